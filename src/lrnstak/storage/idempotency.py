"""Powertools' idempotency records, in their own DynamoDB table, through this container's client."""

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from lrnstak.storage.clients import DynamoDBClient


def idempotency_store(dynamodb: DynamoDBClient, table_name: str) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb)
