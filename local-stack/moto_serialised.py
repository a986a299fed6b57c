"""moto server, with DynamoDB's isolation: one DynamoDB request at a time.

moto answers requests on threads and checks a conditional write's condition, then applies it,
without a lock: two concurrent conditional writes on one item can both pass (a lost update), and a
transaction can interleave with a write. Real DynamoDB never does either. This launcher runs
moto's own server with every DynamoDB request serialised (they are short; SQS long polls and S3
streams keep running concurrently). Same arguments as `moto_server`.
"""

import sys
import threading

from moto.moto_server import werkzeug_app
from moto.server import main

_dynamodb = threading.Lock()
_dispatch = werkzeug_app.DomainDispatcherApplication.__call__


def _serialised(self, environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        with _dynamodb:
            # moto computes the whole response inside the call: the write is done when it returns.
            return list(_dispatch(self, environ, start_response))
    return _dispatch(self, environ, start_response)


werkzeug_app.DomainDispatcherApplication.__call__ = _serialised

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
