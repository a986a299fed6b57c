"""moto server as the local stack runs it: IAM enforced, and closer to real AWS where it matters.

Started by local-stack/src/emulator.rs with the repo's venv (moto[server]==5.1.22):

    .venv/bin/python local-stack/moto_server.py --admin-key-file FILE -H 127.0.0.1 -p PORT

Before serving, it creates an administrator (an IAM user allowed everything, the local stack's own
identity for provisioning and for the tests' inspection) and writes its keys to FILE; then every
request is checked against the caller's IAM policies (moto's INITIAL_NO_AUTH_ACTION_COUNT = 0).
Each function of the template runs under an IAM user that holds its role's policies, so a
permission the code needs and the template lacks fails the test that exercises it.

What this adds to moto, each because real AWS behaves so and moto does not:
- DynamoDB is authorised per table (moto checks every DynamoDB action against `*`, so a policy
  naming a table never matches); a Query or Scan of an index against `table/T/index/I`;
  TransactWriteItems / TransactGetItems per item, as the item's own action (PutItem, UpdateItem,
  DeleteItem, ConditionCheckItem, GetItem) on its table — there is no IAM action for a transaction.
- DynamoDB's TransactWriteItems is idempotent by its ClientRequestToken (which the SDKs fill in
  once per call and keep across their retries): the same token with the same request within 10
  minutes answers as the first call did without writing again, with another request
  IdempotentParameterMismatchException. moto ignores the token, so a transaction retried after
  its answer was lost (tests/support/fault_proxy.rs) would meet its own writes and be cancelled,
  where DynamoDB answers success. Only a successful call's token is kept (DynamoDB's documentation
  does not say what a cancelled transaction's token does; the SDK never reuses a token for another
  request), the 10 minutes run from the first call, and tokens are shared by every caller; a
  replay is authorised as the call itself would be.
- DynamoDB requests are serialised: moto's TransactWriteItems checks its conditions and then writes
  without a lock, so two concurrent transactions on one item could both pass their conditions; real
  DynamoDB isolates them (serializable for transactional writes).
- S3 bucket policies are evaluated for the caller: a statement applies to `Principal: "*"` (or
  `{"AWS": "*"}`) only, its Condition against the caller's context (`aws:PrincipalTag/<key>` from
  its IAM user's tags), a Deny refuses and nothing else does. moto evaluates them without any
  caller: every condition holds, so `DenyReadingQuarantine` denied even a quarantine reader.
  (moto still names a HEAD's action s3:HeadObject, which the deny does not list: locally a HEAD of
  quarantine/ passes, where S3 authorises it as s3:GetObject and refuses it.)
- S3: a GET or HEAD of a missing key answers 403 AccessDenied unless the caller may s3:ListBucket
  the bucket with the key as `s3:prefix` (moto always answers 404); and s3:ListBucket honours
  `s3:prefix` conditions (StringLike, StringEquals), which moto ignores.
- Secrets Manager is authorised per secret (moto checks its actions against `*`).
- SQS batches (DeleteMessageBatch, SendMessageBatch, ChangeMessageVisibilityBatch) are authorised
  as their single action, as SQS does.
- S3 presigned URLs are authorised as their signer (the X-Amz-Credential of the query string);
  moto's IAM check needs an Authorization header and fails them otherwise.
- S3's event notifications name the object's version (`versionId`) in a versioned bucket, as S3's
  do; moto's name none, so the processor looked each version up by its ETag, which a version
  deleted for good no longer has (found by tests/restart: a redelivered event of a quarantined
  upload was taken for another version).
- S3 answers a CORS preflight (OPTIONS) from the bucket's CORS rules without authenticating it;
  moto checks the presigned query's signature, which is the PUT's, and answers 403 (a browser
  then refuses to send the upload).
- Signatures are not verified (moto miscomputes them for query strings holding `%2F`); identity
  comes from the access key id. What a signature guards (expiry, signed headers) is tested
  against an S3 that enforces SigV4 (s3s-fs: tests/sigv4), not here.

With `--state-dir DIR` (tests/restart), its state outlives the process, as AWS's outlives any
outage: every request that may write runs alone and its effect is saved to DIR before it is
answered (a pickle of the services' backends, written to a temporary file and renamed over the
last), and a server started on DIR resumes from it. Killed at any instant (SIGKILL), it keeps every
write it acknowledged; a write cut off before its answer is either kept or not, and its caller, who
saw no answer, retries it — as against AWS. An SQS long poll is served as short polls, each alone,
so it never holds the others up. This mode is slow (a pickle per write) and for that test only.
"""

import argparse
import copyreg
import fnmatch
import io
import json
import os
import pickle
import re
import sys
import threading
import time
from urllib.parse import parse_qs, urlparse

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

from moto import settings  # noqa: E402
from moto.core.authorization import ActionAuthenticatorMixin  # noqa: E402
from moto.dynamodb.responses import DynamoHandler  # noqa: E402
from moto.iam.access_control import IAMRequest, IAMRequestBase, S3IAMRequest  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.s3.models import FakeBucket, FakeKey  # noqa: E402
from moto.s3.responses import S3Response  # noqa: E402
from moto.core.exceptions import HTTPException  # noqa: E402

ACCOUNT = "123456789012"


def enforcing() -> bool:
    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


# ------------------------------------------------------------------ identity


_original_init = IAMRequestBase.__init__


# SQS authorises a batch as its single action (there is no sqs:DeleteMessageBatch permission);
# moto checks the batch's own name, so a role allowed sqs:DeleteMessage could not delete a batch.
BATCH_ACTIONS = {
    "DeleteMessageBatch": "DeleteMessage",
    "SendMessageBatch": "SendMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _init(self, account_id, method, path, data, body, headers, action):
    if isinstance(action, str):
        action = BATCH_ACTIONS.get(action, action)
    if "Authorization" not in headers:
        query = parse_qs(urlparse(path).query)
        credential = query.get("X-Amz-Credential", [None])[0]
        if not credential and query.get("AWSAccessKeyId"):  # a SigV2 presigned URL (boto3's default)
            credential = f"{query['AWSAccessKeyId'][0]}/19700101/us-east-1/s3/aws4_request"
        if credential:
            headers = dict(headers)
            headers["Authorization"] = (
                f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=presigned"
            )
    _original_init(self, account_id, method, path, data, body, headers, action)


IAMRequestBase.__init__ = _init
IAMRequestBase.check_signature = lambda self: None


def _request_for(action):
    """An IAMRequest whose action is `action` (e.g. PutItem) rather than the HTTP request's."""

    class ForAction(IAMRequest):
        def __init__(self, **kwargs):
            kwargs["action"] = action
            super().__init__(**kwargs)

    return ForAction


# ------------------------------------------------------------------ DynamoDB

_dynamodb_lock = threading.Lock()
_original_dynamo_call = DynamoHandler.call_action


# ClientRequestToken -> (expiry on the wall clock, so it survives a restart with --state-dir; the
# request without its token; the answer).
_transaction_tokens = {}
TOKEN_LIFETIME_SECONDS = 600


def _token_of(self):
    """The TransactWriteItems call's token and its request without it, or None."""
    if self._get_action() != "TransactWriteItems":
        return None
    try:
        body = self.body if isinstance(self.body, dict) else json.loads(self.body or "{}")
    except ValueError:
        return None
    token = body.get("ClientRequestToken")
    if not token:
        return None
    request = {k: v for k, v in body.items() if k != "ClientRequestToken"}
    return token, json.dumps(request, sort_keys=True)


def _dynamo_call_action(self):
    with _dynamodb_lock:
        tokened = _token_of(self)
        now = time.time()
        if tokened:
            for old in [t for t, (expiry, _, _) in _transaction_tokens.items() if expiry < now]:
                del _transaction_tokens[old]
            seen = _transaction_tokens.get(tokened[0])
            if seen is not None:
                # A replay is authorised like any call (moto checks IAM inside the call we skip).
                try:
                    self._authenticate_and_authorize_normal_action("*")
                except HTTPException as denied:
                    status, headers, body = self._transform_response(
                        self.response_headers, (denied.description, {"status": denied.code})
                    )
                    headers, body = self._enrich_response(headers, body)
                    return status, headers, body
                _, request, (status, headers, body) = seen
                if request == tokened[1]:
                    return status, dict(headers), body
                return (
                    400,
                    {"Content-Type": "application/x-amz-json-1.0"},
                    json.dumps(
                        {
                            "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                            "message": "The request uses the same client token as a previous, but non-identical request.",
                        }
                    ),
                )
        status, headers, body = _original_dynamo_call(self)
        if tokened and int(status) == 200:
            _transaction_tokens[tokened[0]] = (now + TOKEN_LIFETIME_SECONDS, tokened[1], (status, dict(headers), body))
        return status, headers, body


def _table_arn(self, table, index=None):
    arn = f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _dynamo_checks(self, body):
    action = self._get_action()
    if action in ("TransactWriteItems", "TransactGetItems"):
        checks = []
        for item in body.get("TransactItems", []):
            for kind, inner in item.items():
                checks.append((TRANSACT_ACTIONS.get(kind, kind), _table_arn(self, inner.get("TableName", ""))))
        return checks
    if action in ("BatchWriteItem", "BatchGetItem"):
        return [(action, _table_arn(self, t)) for t in body.get("RequestItems", {})]
    table = body.get("TableName") or body.get("ResourceArn")
    if not table:
        return [(action, "*")]
    if table.startswith("arn:"):
        return [(action, table)]
    return [(action, _table_arn(self, table, body.get("IndexName")))]


def _dynamo_authorize(self, resource="*"):
    body = self.body if isinstance(self.body, dict) else json.loads(self.body or "{}")
    for action, arn in _dynamo_checks(self, body):
        self._authenticate_and_authorize_action(_request_for(action), arn)


DynamoHandler.call_action = _dynamo_call_action
DynamoHandler._authenticate_and_authorize_normal_action = _dynamo_authorize


# ------------------------------------------------------------------ Secrets Manager

from moto.secretsmanager.responses import SecretsManagerResponse  # noqa: E402


def _secret_resource(self):
    """The secret's ARN (moto checks every Secrets Manager action against `*`)."""
    try:
        secret_id = json.loads(self.body or "{}").get("SecretId")
        return str(self.backend.describe_secret(secret_id).arn) if secret_id else "*"
    except Exception:
        return "*"


SecretsManagerResponse._determine_resource = _secret_resource


# ------------------------------------------------------------------ S3


class _AccessDenied(HTTPException):
    code = 403

    def __init__(self):
        super().__init__()
        self.description = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
            "<Message>Access Denied</Message></Error>"
        )


def _statements(policy):
    if isinstance(policy, dict) and "policy_document" in policy:
        document = policy["policy_document"]
    elif hasattr(policy, "versions"):
        document = next(v.document for v in policy.versions if v.is_default)
    else:
        document = policy
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _matches(patterns, value):
    return any(fnmatch.fnmatchcase(value, p) for p in _as_list(patterns))


def _condition_holds(condition, context):
    """StringLike / StringEquals / StringNotEquals on the keys of `context` (a negated operator holds
    for a key the context lacks, as in IAM); any other condition does not hold."""
    for operator, keys in condition.items():
        for key, expected in keys.items():
            actual = context.get(key)
            if operator == "StringNotEquals":
                if actual is not None and actual in _as_list(expected):
                    return False
                continue
            if actual is None:
                return False
            if operator == "StringLike":
                if not _matches(expected, actual):
                    return False
            elif operator == "StringEquals":
                if actual not in _as_list(expected):
                    return False
            else:
                return False
    return True


def _may_list(self, bucket, prefix):
    """Whether the caller may s3:ListBucket `bucket` with this s3:prefix (conditions honoured)."""
    request = S3IAMRequest(
        account_id=self.current_account,
        method="GET",
        path=f"/{bucket}",
        data={},
        body=b"",
        headers=self.headers,
        action="ListBucket",
    )
    arn = f"arn:aws:s3:::{bucket}"
    allowed = False
    for policy in request._access_key.collect_policies():
        for st in _statements(policy):
            if "Action" not in st or not _matches(
                [a.lower() for a in _as_list(st["Action"])], "s3:listbucket"
            ):
                continue
            if not _matches(st.get("Resource", []), arn):
                continue
            applies = _condition_holds(st.get("Condition", {}), {"s3:prefix": prefix})
            if applies and st.get("Effect") == "Deny":
                return False
            if applies and st.get("Effect") == "Allow":
                allowed = True
    return allowed


# The caller of the S3 request this thread serves, for the bucket policy (moto's
# FakeBucket.get_permission is given only the action and the resource).
_caller = threading.local()


def _caller_context(self):
    """The condition context of the request's caller: `aws:PrincipalTag/<key>` of its IAM user."""
    parsed = urlparse(self.uri)
    request = S3IAMRequest(
        account_id=self.current_account,
        method=self.method,
        path=parsed.path + (f"?{parsed.query}" if parsed.query else ""),
        data={},
        body=b"",
        headers=self.headers,
        action="GetObject",
    )
    iam = iam_backends[ACCOUNT]["aws"]
    tags = iam.list_user_tags(request._access_key._owner_user_name)
    return {f"aws:PrincipalTag/{t['Key']}": t["Value"] for t in tags}


def _set_caller(self):
    _caller.request = self
    _caller.context = None


def _context():
    """The caller's condition context, resolved the first time a policy condition needs it (a
    lookup of the caller's IAM user: most requests meet no condition)."""
    if getattr(_caller, "context", None) is None:
        _caller.context = {}
        request = getattr(_caller, "request", None)
        if request is not None and enforcing():
            try:
                _caller.context = _caller_context(request)
            except Exception:  # noqa: BLE001 - no or unknown keys: no tags (moto refuses them)
                pass
    return _caller.context


def _principal_is_everyone(principal):
    return principal == "*" or (isinstance(principal, dict) and principal.get("AWS") == "*")


def _bucket_permission(self, action, resource):
    from moto.iam.access_control import PermissionResult

    if self.policy is None:
        return PermissionResult.NEUTRAL
    result = PermissionResult.NEUTRAL
    for st in _statements(json.loads(self.policy.decode())):
        if not _principal_is_everyone(st.get("Principal")):
            continue  # a service or a named principal: none of the emulator's callers
        if not _matches([a.lower() for a in _as_list(st.get("Action", []))], action.lower()):
            continue
        if not _matches(st.get("Resource", []), resource):
            continue
        if st.get("Condition") and not _condition_holds(st["Condition"], _context()):
            continue
        if st.get("Effect") == "Deny":
            return PermissionResult.DENIED
        result = PermissionResult.PERMITTED
    return result


FakeBucket.get_permission = _bucket_permission

_original_key_response = S3Response._key_response


def _key_response(self, request, full_url):
    # moto checks an object request against the bucket policy before it authenticates the caller.
    _set_caller(self)
    return _original_key_response(self, request, full_url)


S3Response._key_response = _key_response

_original_s3_authorize = S3Response._authenticate_and_authorize_s3_action


def _s3_authorize(self, bucket_name=None, key_name=None):
    _set_caller(self)
    # A CORS preflight carries no credentials (a browser's OPTIONS to a presigned URL has the PUT's
    # query signature); S3 answers it from the bucket's CORS rules alone.
    if self.method == "OPTIONS":
        return
    _original_s3_authorize(self, bucket_name=bucket_name, key_name=key_name)
    if not enforcing() or not bucket_name:
        return
    action = self._get_action()
    if key_name is None and action == "ListBucket":
        prefix = self.querystring.get("prefix", [""])[0]
        if isinstance(prefix, bytes):
            prefix = prefix.decode("utf-8")
        if not _may_list(self, bucket_name, prefix or ""):
            raise _AccessDenied()
    elif key_name is not None and action == "GetObject" and self.method in ("GET", "HEAD"):
        if "versionId" in self.querystring or "uploadId" in self.querystring:
            return
        try:
            exists = isinstance(self.backend.get_bucket(bucket_name).keys.get(key_name), FakeKey)
        except Exception:
            return  # no such bucket: moto answers it
        if not exists and not _may_list(self, bucket_name, key_name):
            raise _AccessDenied()


S3Response._authenticate_and_authorize_s3_action = _s3_authorize


# ------------------------------------------------------------------ S3 events name the version

from moto.s3 import notifications as _s3_notifications  # noqa: E402

_original_s3_event = _s3_notifications._get_s3_event


def _s3_event(event_name, bucket, key, notification_id):
    event = _original_s3_event(event_name, bucket, key, notification_id)
    version = getattr(key, "version_id", None)
    if version and version != "null" and getattr(bucket, "is_versioned", False):
        for record in event.get("Records", []):
            record["s3"]["object"]["versionId"] = version
    return event


_s3_notifications._get_s3_event = _s3_event


# ------------------------------------------------------------------ state across a kill (--state-dir)

from moto.backends import get_backend  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: E402

# Locks are rebuilt, not saved (moto's SQS queues hold one): nobody holds them across a restart.
copyreg.pickle(type(threading.RLock()), lambda _: (threading.RLock, ()))
copyreg.pickle(type(threading.Lock()), lambda _: (threading.Lock, ()))


def _versioned_key_store(versions):
    store = _VersionedKeyStore()
    for key, listed in versions:
        store.setlist(key, listed)
    return store


# A bucket's keys: a dict whose items() shows each key's latest version only, so pickled as a
# dict it kept no noncurrent version (found by tests/restart: an object behind its delete marker
# came back gone). Saved as every key's whole list.
from moto.s3.utils import _VersionedKeyStore  # noqa: E402

copyreg.pickle(_VersionedKeyStore, lambda store: (_versioned_key_store, (list(store.lists()),)))

PERSISTED = ("iam", "s3", "sqs", "dynamodb", "secretsmanager", "sts")
# What a request of each service may change (an S3 write may send an event to an SQS queue).
CHANGES = {
    "iam": ("iam",),
    "s3": ("s3", "sqs"),
    "sqs": ("sqs",),
    "dynamodb": ("dynamodb",),
    "secretsmanager": ("secretsmanager",),
    "sts": ("sts", "iam"),
}
READ_ONLY = {"GET", "HEAD", "OPTIONS"}
# The services the Authorization header (or a presigned URL's X-Amz-Credential) names.
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
PRESIGNED_SCOPE = re.compile(r"X-Amz-Credential=[^&]*?%2F\d{8}%2F[^&%]+%2F([a-z0-9-]+)%2Faws4_request")
LONG_POLL_STEP_SECONDS = 0.1

_state_dir = None
_state_lock = threading.Lock()
_pickled = {}  # service -> its backends as last saved (a request re-pickles only what it may change)


def _state_file():
    return os.path.join(_state_dir, "state.pickle")


def _save(services):
    try:
        _write_state(services)
    except BaseException as e:  # noqa: BLE001 - any failure: the write is applied but not saved
        # Acknowledged means saved: a write that could not be saved must not be answered (the
        # caller would retry it and it would happen twice); die as a crash would, unanswered.
        print(f"clinflow: state not saved ({e!r}); exiting", file=sys.stderr, flush=True)
        os._exit(70)


def _write_state(services):
    for service in services:
        _pickled[service] = pickle.dumps(dict(get_backend(service)), protocol=pickle.HIGHEST_PROTOCOL)
    _pickled["clinflow:tokens"] = pickle.dumps(_transaction_tokens, protocol=pickle.HIGHEST_PROTOCOL)
    tmp = _state_file() + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(_pickled, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, _state_file())


def _restore():
    """Resumes from the state file, if there is one; whether there was."""
    if not os.path.exists(_state_file()):
        return False
    with open(_state_file(), "rb") as f:
        saved = pickle.load(f)
    for service in PERSISTED:
        if service in saved:
            backends = get_backend(service)
            backends.clear()
            backends.update(pickle.loads(saved[service]))
    _transaction_tokens.update(pickle.loads(saved.get("clinflow:tokens", pickle.dumps({}))))
    _pickled.update(saved)
    return True


def _service_of(environ):
    found = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", "")) or PRESIGNED_SCOPE.search(
        environ.get("QUERY_STRING", "")
    )
    return found.group(1) if found else None


def _call_buffered(app, environ, body):
    """The wrapped app's answer to `environ` with `body`, whole: (status, headers, chunks)."""
    answered = {}

    def start_response(status, headers, exc_info=None):
        answered["status"], answered["headers"] = status, headers
        return lambda _data: None

    environ = dict(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    chunks = list(_original_app_call(app, environ, start_response))
    return answered["status"], answered["headers"], chunks


def _receive_long_poll(app, environ, body):
    """An SQS ReceiveMessage (JSON protocol) served as short polls until a message or the wait."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        request = None
    wait = request.get("WaitTimeSeconds") if isinstance(request, dict) else None
    if not wait:
        return None  # a short poll (or the queue's default wait, not looked up here): as it is
    request["WaitTimeSeconds"] = 0
    short = json.dumps(request).encode()
    deadline = time.monotonic() + float(wait)
    while True:
        with _state_lock:
            status, headers, chunks = _call_buffered(app, environ, short)
            got = b"".join(chunks)
            if not status.startswith("200") or b'"Messages"' in got or time.monotonic() >= deadline:
                _save(CHANGES["sqs"])
                return status, headers, [got]
        time.sleep(LONG_POLL_STEP_SECONDS)


def _persisting_call(self, environ, start_response):
    if environ.get("REQUEST_METHOD") in READ_ONLY:
        return _original_app_call(self, environ, start_response)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        body = environ["wsgi.input"].read(length)
    elif environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream at its end
        body = environ["wsgi.input"].read()
    else:
        body = b""
    service = _service_of(environ)
    answer = None
    if service == "sqs" and environ.get("HTTP_X_AMZ_TARGET", "").endswith(".ReceiveMessage"):
        answer = _receive_long_poll(self, environ, body)
    if answer is None:
        with _state_lock:
            answer = _call_buffered(self, environ, body)
            _save(CHANGES.get(service, PERSISTED))
    status, headers, chunks = answer
    start_response(status, headers)
    return chunks


_original_app_call = DomainDispatcherApplication.__call__


def persist_state(state_dir):
    """Saves every write to `state_dir` before it is answered; resumes from it. Whether it resumed."""
    global _state_dir
    _state_dir = state_dir
    os.makedirs(state_dir, exist_ok=True)
    DomainDispatcherApplication.__call__ = _persisting_call
    return _restore()


# ------------------------------------------------------------------ start


def bootstrap_admin(key_file):
    iam = iam_backends[ACCOUNT]["aws"]
    iam.create_user(None, "clinflow-local-admin", "/", None)
    iam.put_user_policy(
        "clinflow-local-admin",
        "everything",
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    )
    key = iam.create_access_key("clinflow-local-admin")
    tmp = key_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"accessKeyId": key.access_key_id, "secretAccessKey": key.secret_access_key}, f)
    os.replace(tmp, key_file)


def main():
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--admin-key-file")
    parser.add_argument("--state-dir")
    args, rest = parser.parse_known_args()
    resumed = False
    if args.state_dir:
        resumed = persist_state(args.state_dir)
        with open(os.path.join(args.state_dir, "moto.pid"), "w") as f:
            f.write(str(os.getpid()))
    if args.admin_key_file:
        saved_keys = os.path.join(args.state_dir, "admin.json") if args.state_dir else None
        if resumed and saved_keys and os.path.exists(saved_keys):
            # The administrator (and every other IAM user) came back with the state: same keys.
            with open(saved_keys) as f:
                keys = f.read()
            with open(args.admin_key_file + ".tmp", "w") as f:
                f.write(keys)
            os.replace(args.admin_key_file + ".tmp", args.admin_key_file)
        else:
            bootstrap_admin(args.admin_key_file)
            if saved_keys:
                with open(args.admin_key_file) as f:
                    keys = f.read()
                with open(saved_keys, "w") as f:
                    f.write(keys)
                with _state_lock:
                    _save(PERSISTED)
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0
    from moto.server import main as moto_main

    moto_main(rest)


if __name__ == "__main__":
    sys.exit(main())
