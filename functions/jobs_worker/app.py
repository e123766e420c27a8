"""The jobs worker: runs the jobs named by the jobs queue's messages (training jobs and batch predictions),
and fails the jobs whose messages ended in the dead-letter queue. Fed by SQS (template.yaml:
JobsWorkerFunction)."""

from lrnstak.cold_start import ImportsPause

# The cyclic GC is held off while the modules below load; what they made is then frozen out of its way.
imports = ImportsPause()

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lrnstak.jobs.service import JobRunner, get_job_service
from lrnstak.observability import logger, publish_metrics, tracer
from lrnstak.predict.batch import get_batch_prediction_service
from lrnstak.settings import get_settings
from lrnstak.storage.jobs_table import PREDICTION, TRAINING
from lrnstak.storage.queue import queue_name_of
from lrnstak.trainer.service import get_trainer_service

processor = BatchProcessor(event_type=EventType.SQS)


def job_id_of(record: SQSRecord) -> str | None:
    try:
        body = json.loads(record.body)
    except ValueError:
        return None
    job_id = body.get("job_id") if isinstance(body, dict) else None
    return job_id if isinstance(job_id, str) else None


def handle_record(record: SQSRecord) -> None:
    job_id = job_id_of(record)
    if job_id is None:
        # Retrying cannot help a message that names no job: it is logged and consumed.
        logger.warning("message names no job", extra={"message_id": record.message_id})
        return
    jobs = get_job_service()
    if queue_name_of(record.event_source_arn) == queue_name_of(get_settings().jobs_queue_url):
        runners: dict[str, JobRunner] = {
            TRAINING: get_trainer_service().run_job,
            PREDICTION: get_batch_prediction_service().run_job,
        }
        jobs.run(job_id, runners)
    else:
        jobs.fail_undeliverable(job_id, int(record.attributes.approximate_receive_count))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@publish_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
    )


imports.end()
