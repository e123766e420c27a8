"""The cache in DynamoDB: a value item per key, or a list as a meta item plus an item per element.

Layout (keys and the TTL attribute must match CacheTable in template.yaml; tests check it):
  pk = <key>, sk = "VALUE"        value (JSON text) or object_key (S3), size, write_id, updated_at, expires_at?
  pk = <key>, sk = "LIST"         list_id, base, head, updated_at, expires_at?
  pk = <key>, sk = "E#<sequence>" list_id, value or object_key, size, claimed_by?: one list element
Sequences are zero-padded so string order is list order; a push to the front takes base + head after an
atomic `ADD head -1`. `base` is fixed when a list is created (nanoseconds of the clock), so a list created
after another was removed never reuses the old one's sort keys. `list_id` ties elements to their list:
elements of a removed list are invisible to readers even before they are deleted. An element carrying
`claimed_by` has been taken by a pop (or a push taking its element back) and is invisible too; its claimer
deletes it next (one whose process died leaves it, invisible, until the list is removed).

Every read is consistent; every method that may lose a race says so by returning None or False, so the
service decides what to retry.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lrnstak.errors import ServiceUnavailable
from lrnstak.storage.clients import DynamoDBClient
from lrnstak.storage.errors import error_code, translate_aws_errors

PARTITION_KEY = "pk"
SORT_KEY = "sk"
EXPIRES_AT = "expires_at"
VALUE_SORT_KEY = "VALUE"
LIST_SORT_KEY = "LIST"
ELEMENT_PREFIX = "E#"
SEQUENCE_DIGITS = 20
# BatchWriteItem takes 25 requests at a time; unprocessed requests (both batch calls) are sent again a bounded
# number of times.
BATCH_SIZE = 25
BATCH_ATTEMPTS = 8
CONDITION_FAILED = "ConditionalCheckFailedException"
# What a reader needs to decide, without the (possibly large) value.
HEADER_ATTRIBUTES = (
    "pk",
    "sk",
    "expires_at",
    "write_id",
    "object_key",
    "size",
    "list_id",
    "base",
    "head",
    "claimed_by",
)

Item = dict[str, Any]


@dataclass(frozen=True)
class StoredValue:
    """A value as JSON text: in the item (`text`) or, when large, in S3 (`object_key`)."""

    text: str | None
    object_key: str | None
    size: int


@dataclass(frozen=True)
class ValueItem:
    key: str
    value: StoredValue
    write_id: str
    updated_at: str
    expires_at: int | None


@dataclass(frozen=True)
class ListMetaItem:
    key: str
    list_id: str
    base: int
    head: int
    updated_at: str
    expires_at: int | None


@dataclass(frozen=True)
class ElementItem:
    key: str
    sort_key: str
    list_id: str
    value: StoredValue
    claimed_by: str | None = None


@dataclass(frozen=True)
class CacheEntry:
    """What a key holds: a value, a list, or (after a race or a failed write) both; VALUE wins."""

    value: ValueItem | None
    meta: ListMetaItem | None


def element_sort_key(sequence: int) -> str:
    return f"{ELEMENT_PREFIX}{sequence:0{SEQUENCE_DIGITS}d}"


def timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _primary_key(key: str, sort_key: str) -> Item:
    return {PARTITION_KEY: {"S": key}, SORT_KEY: {"S": sort_key}}


def _stored_value_attributes(value: StoredValue) -> Item:
    attributes: Item = {"size": {"N": str(value.size)}}
    if value.object_key is not None:
        attributes["object_key"] = {"S": value.object_key}
    else:
        attributes["value"] = {"S": value.text or ""}
    return attributes


def _stored_value_from(item: Item) -> StoredValue:
    object_key = item.get("object_key", {}).get("S")
    text = item.get("value", {}).get("S")
    return StoredValue(text=text, object_key=object_key, size=int(item.get("size", {}).get("N", "0")))


def _expires_at_from(item: Item) -> int | None:
    raw = item.get(EXPIRES_AT, {}).get("N")
    return int(raw) if raw is not None else None


def value_item(record: ValueItem) -> Item:
    item: Item = {
        **_primary_key(record.key, VALUE_SORT_KEY),
        **_stored_value_attributes(record.value),
        "write_id": {"S": record.write_id},
        "updated_at": {"S": record.updated_at},
    }
    if record.expires_at is not None:
        item[EXPIRES_AT] = {"N": str(record.expires_at)}
    return item


def value_from_item(item: Item) -> ValueItem:
    return ValueItem(
        key=item[PARTITION_KEY]["S"],
        value=_stored_value_from(item),
        write_id=item.get("write_id", {}).get("S", ""),
        updated_at=item.get("updated_at", {}).get("S", ""),
        expires_at=_expires_at_from(item),
    )


def meta_from_item(item: Item) -> ListMetaItem:
    return ListMetaItem(
        key=item[PARTITION_KEY]["S"],
        list_id=item["list_id"]["S"],
        base=int(item["base"]["N"]),
        head=int(item["head"]["N"]),
        updated_at=item.get("updated_at", {}).get("S", ""),
        expires_at=_expires_at_from(item),
    )


def element_from_item(item: Item) -> ElementItem:
    return ElementItem(
        key=item[PARTITION_KEY]["S"],
        sort_key=item[SORT_KEY]["S"],
        list_id=item.get("list_id", {}).get("S", ""),
        value=_stored_value_from(item),
        claimed_by=item.get("claimed_by", {}).get("S"),
    )


def _live_condition(now: float) -> tuple[str, dict[str, str], Item]:
    """A condition that the item exists and has not expired at `now`."""
    return (
        "attribute_exists(#pk) AND (attribute_not_exists(#e) OR #e > :now)",
        {"#pk": PARTITION_KEY, "#e": EXPIRES_AT},
        {":now": {"N": str(int(now))}},
    )


def _expiry_update(expires_at: int | None, now: float) -> tuple[str, Item]:
    """Sets the new expiry (or removes it: no expiry) and updated_at; the expression and its values."""
    values: Item = {":u": {"S": timestamp(now)}}
    if expires_at is None:
        return "SET #u = :u REMOVE #e", values
    return "SET #u = :u, #e = :e", {**values, ":e": {"N": str(expires_at)}}


def _entry_of(items: list[Item]) -> CacheEntry:
    by_sort_key = {item[SORT_KEY]["S"]: item for item in items}
    value = by_sort_key.get(VALUE_SORT_KEY)
    meta = by_sort_key.get(LIST_SORT_KEY)
    return CacheEntry(value_from_item(value) if value else None, meta_from_item(meta) if meta else None)


class CacheTable:
    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    # reads ---------------------------------------------------------------------------------------------

    def read_entry(self, key: str, with_value: bool = True) -> CacheEntry:
        """The value item and the list's meta item of a key, in one consistent BatchGetItem."""
        request: dict[str, Any] = {
            "Keys": [_primary_key(key, VALUE_SORT_KEY), _primary_key(key, LIST_SORT_KEY)],
            "ConsistentRead": True,
        }
        if not with_value:
            names = {f"#a{index}": name for index, name in enumerate(HEADER_ATTRIBUTES)}
            request["ProjectionExpression"] = ", ".join(names)
            request["ExpressionAttributeNames"] = names
        pending: Any = {self._table: request}
        items: list[Item] = []
        for attempt in range(BATCH_ATTEMPTS):
            with translate_aws_errors("read the cache"):
                response = self._dynamodb.batch_get_item(RequestItems=pending)
            items += [dict(item) for item in response.get("Responses", {}).get(self._table, [])]
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return _entry_of(items)
            time.sleep(min(1.0, 0.05 * 2**attempt))
        raise ServiceUnavailable("DynamoDB is busy while trying to read the cache; retry shortly.")

    def get_list_meta(self, key: str) -> ListMetaItem | None:
        with translate_aws_errors("read the cache"):
            response = self._dynamodb.get_item(
                TableName=self._table, Key=_primary_key(key, LIST_SORT_KEY), ConsistentRead=True
            )
        item = response.get("Item")
        return meta_from_item(dict(item)) if item else None

    def elements(self, key: str, page_size: int, with_values: bool = True) -> Iterator[ElementItem]:
        """Every element item of a key, front first, whatever list it belongs to; fetched a page at a time
        (the next page only once the previous one's last item has been taken).

        Without values, an inline element's text is None (an S3 pointer is kept): enough to claim or delete it.
        """
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#sk": SORT_KEY},
            "ExpressionAttributeValues": {":pk": {"S": key}, ":prefix": {"S": ELEMENT_PREFIX}},
            "ConsistentRead": True,
            "Limit": page_size,
        }
        if not with_values:
            names = {f"#a{index}": name for index, name in enumerate(HEADER_ATTRIBUTES)}
            query["ProjectionExpression"] = ", ".join(names)
            query["ExpressionAttributeNames"] = {**query["ExpressionAttributeNames"], **names}
        while True:
            with translate_aws_errors("read a cached list"):
                response = self._dynamodb.query(**query)
            yield from (element_from_item(dict(item)) for item in response.get("Items", []))
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return
            query = {**query, "ExclusiveStartKey": last_key}

    # values --------------------------------------------------------------------------------------------

    def put_value(self, record: ValueItem) -> ValueItem | None:
        """Writes the value item; returns the one it replaced, whose S3 object (if any) is now unreferenced.

        Concurrent writers each get back a different replaced item, so each object is discarded exactly once.
        """
        with translate_aws_errors("write a cached value"):
            response = self._dynamodb.put_item(TableName=self._table, Item=value_item(record), ReturnValues="ALL_OLD")
        old = response.get("Attributes")
        return value_from_item(dict(old)) if old else None

    def delete_value(self, key: str, expected: ValueItem | None = None) -> ValueItem | None:
        """Deletes the value item (only if it is still `expected`, when given); returns what was deleted."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": _primary_key(key, VALUE_SORT_KEY),
            "ReturnValues": "ALL_OLD",
        }
        if expected is not None:
            request.update(self._same_value_condition(expected))
        old = self._conditional("delete", request, "delete a cached value")
        return value_from_item(old) if old else None

    @staticmethod
    def _same_value_condition(expected: ValueItem) -> dict[str, Any]:
        names = {"#w": "write_id", "#e": EXPIRES_AT}
        values: Item = {":w": {"S": expected.write_id}}
        if expected.expires_at is None:
            condition = "#w = :w AND attribute_not_exists(#e)"
        else:
            condition = "#w = :w AND #e = :e"
            values[":e"] = {"N": str(expected.expires_at)}
        return {
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def set_value_expiry(self, key: str, expires_at: int | None, now: float) -> bool:
        """Changes a live value's expiry; False when there is no live value any more."""
        condition, names, values = _live_condition(now)
        update, update_values = _expiry_update(expires_at, now)
        request = {
            "TableName": self._table,
            "Key": _primary_key(key, VALUE_SORT_KEY),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {**names, "#u": "updated_at"},
            "ExpressionAttributeValues": {**values, **update_values},
            "ReturnValues": "UPDATED_NEW",
        }
        return self._conditional("update", request, "change a cached value's expiry") is not None

    # lists ---------------------------------------------------------------------------------------------

    def next_sequence(self, key: str, new_list: ListMetaItem, change_expiry: bool, now: float) -> ListMetaItem | None:
        """Takes the next sequence at the front of the key's list, creating the list (as `new_list`) if absent.

        One UpdateItem, so concurrent pushes get different sequences. None when the list has expired: the
        caller removes it and tries again.
        """
        update = "ADD #head :minus_one SET #lid = if_not_exists(#lid, :lid), #base = if_not_exists(#base, :base)"
        update += ", #u = :u"
        values: Item = {
            ":minus_one": {"N": "-1"},
            ":lid": {"S": new_list.list_id},
            ":base": {"N": str(new_list.base)},
            ":u": {"S": new_list.updated_at},
            ":now": {"N": str(int(now))},
        }
        if change_expiry and new_list.expires_at is not None:
            update += ", #e = :e"
            values[":e"] = {"N": str(new_list.expires_at)}
        elif change_expiry:
            update += " REMOVE #e"
        request = {
            "TableName": self._table,
            "Key": _primary_key(key, LIST_SORT_KEY),
            "UpdateExpression": update,
            "ConditionExpression": "attribute_not_exists(#pk) OR attribute_not_exists(#e) OR #e > :now",
            "ExpressionAttributeNames": {
                "#pk": PARTITION_KEY,
                "#head": "head",
                "#lid": "list_id",
                "#base": "base",
                "#u": "updated_at",
                "#e": EXPIRES_AT,
            },
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        item = self._conditional("update", request, "push onto a cached list")
        return meta_from_item(item) if item else None

    def put_element(self, element: ElementItem) -> None:
        """Writes an element. Its sort key came from next_sequence, so no other write uses it."""
        item: Item = {
            **_primary_key(element.key, element.sort_key),
            "list_id": {"S": element.list_id},
            **_stored_value_attributes(element.value),
        }
        with translate_aws_errors("push onto a cached list"):
            self._dynamodb.put_item(TableName=self._table, Item=item)

    def get_element(self, element: ElementItem) -> ElementItem | None:
        with translate_aws_errors("read a cached list"):
            response = self._dynamodb.get_item(
                TableName=self._table, Key=_primary_key(element.key, element.sort_key), ConsistentRead=True
            )
        item = response.get("Item")
        return element_from_item(dict(item)) if item else None

    def claim_element(self, element: ElementItem, claim_id: str) -> ElementItem | None:
        """Marks an element of its list as taken by `claim_id`, if it is still there and not taken: whoever's
        mark succeeds owns it, readers skip it from then on. The element with its value; None when lost.

        A retry of the mark whose first answer was lost finds its own mark and still owns the element (a
        plain conditional delete would find it gone, and the element would be lost to everyone).
        """
        request = {
            "TableName": self._table,
            "Key": _primary_key(element.key, element.sort_key),
            "UpdateExpression": "SET #c = :c",
            "ConditionExpression": "attribute_exists(#pk) AND #lid = :lid AND (attribute_not_exists(#c) OR #c = :c)",
            "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#lid": "list_id", "#c": "claimed_by"},
            "ExpressionAttributeValues": {":lid": {"S": element.list_id}, ":c": {"S": claim_id}},
            "ReturnValues": "ALL_NEW",
        }
        claimed = self._conditional("update", request, "pop from a cached list")
        return element_from_item(claimed) if claimed else None

    def delete_claimed(self, element: ElementItem, claim_id: str) -> None:
        """Deletes an element this claim owns (already gone is fine: a retry whose first answer was lost)."""
        request = {
            "TableName": self._table,
            "Key": _primary_key(element.key, element.sort_key),
            "ConditionExpression": "#c = :c",
            "ExpressionAttributeNames": {"#c": "claimed_by"},
            "ExpressionAttributeValues": {":c": {"S": claim_id}},
        }
        self._conditional("delete", request, "pop from a cached list")

    def set_list_expiry(self, meta: ListMetaItem, expires_at: int | None, now: float) -> bool:
        """Changes a live list's expiry; False when that list is gone or expired."""
        condition, names, values = _live_condition(now)
        update, update_values = _expiry_update(expires_at, now)
        request = {
            "TableName": self._table,
            "Key": _primary_key(meta.key, LIST_SORT_KEY),
            "UpdateExpression": update,
            "ConditionExpression": f"{condition} AND #lid = :lid",
            "ExpressionAttributeNames": {**names, "#lid": "list_id", "#u": "updated_at"},
            "ExpressionAttributeValues": {**values, **update_values, ":lid": {"S": meta.list_id}},
            "ReturnValues": "UPDATED_NEW",
        }
        return self._conditional("update", request, "change a cached list's expiry") is not None

    def delete_list_meta(self, meta: ListMetaItem, only_if_expired_at: int | None = None) -> bool:
        """Deletes a list's meta item if it is still that list (and still that expiry, when given).

        Once it is gone no element can be added to that list (put_element checks it), so the caller then
        owns the deletion of its elements.
        """
        condition = "#lid = :lid"
        names = {"#lid": "list_id"}
        values: Item = {":lid": {"S": meta.list_id}}
        if only_if_expired_at is not None:
            condition += " AND #e = :e"
            names["#e"] = EXPIRES_AT
            values[":e"] = {"N": str(only_if_expired_at)}
        request = {
            "TableName": self._table,
            "Key": _primary_key(meta.key, LIST_SORT_KEY),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_OLD",
        }
        return self._conditional("delete", request, "delete a cached list") is not None

    def delete_elements(self, elements: list[ElementItem]) -> None:
        """Deletes elements of lists that no longer exist (nothing else can write those sort keys)."""
        for start in range(0, len(elements), BATCH_SIZE):
            batch = elements[start : start + BATCH_SIZE]
            requests: Any = {self._table: [{"DeleteRequest": {"Key": _primary_key(e.key, e.sort_key)}} for e in batch]}
            for attempt in range(BATCH_ATTEMPTS):
                with translate_aws_errors("delete a cached list"):
                    response = self._dynamodb.batch_write_item(RequestItems=requests)
                requests = response.get("UnprocessedItems") or {}
                if not requests:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            if requests:
                raise ServiceUnavailable("DynamoDB is busy while trying to delete a cached list; retry shortly.")

    # plumbing ------------------------------------------------------------------------------------------

    def _conditional(self, operation: str, request: dict[str, Any], action: str) -> Item | None:
        """Runs a conditional UpdateItem/DeleteItem; the attributes it returned, or None when the condition failed.

        A delete with no condition that finds nothing also returns None.
        """
        call = self._dynamodb.update_item if operation == "update" else self._dynamodb.delete_item
        try:
            with translate_aws_errors(action):
                response = call(**request)
        except ClientError as error:
            if error_code(error) == CONDITION_FAILED:
                return None
            raise
        attributes = response.get("Attributes")
        return dict(attributes) if attributes else None
