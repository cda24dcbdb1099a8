#!/usr/bin/python3
"""The s3 backend's SigV4 signer against botocore (Debian python3-botocore):
for a table of real S3 requests (GET with query, PUT with a body hash,
multipart upload part, ListObjectsV2 with a continuation token, keys with
spaces, unicode and '+'), the Authorization header our signer computes
equals the one botocore's S3SigV4Auth (a SigV4Auth) computes for the same
request. AWS's published test-suite vectors are checked in the unit test
lh_sigv4_test."""

import datetime
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402

TABLE = [
    # method, host, key, body, query pairs
    ("GET", "127.0.0.1:4569", "docs/hello.txt", "", []),
    ("GET", "s3.amazonaws.com", "docs/hello.txt", "", [("versionId", "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")]),
    ("PUT", "127.0.0.1:4569", "docs/new.bin", "hello world\n", []),
    ("PUT", "s3.amazonaws.com", "_vectors/big.bin", "part one bytes",
     [("partNumber", "3"), ("uploadId", "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA")]),
    ("POST", "s3.amazonaws.com", "_vectors/big.bin", "", [("uploads", "")]),
    ("GET", "127.0.0.1:4569", "", "",
     [("list-type", "2"), ("prefix", "many/"), ("max-keys", "1000"),
      ("continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")]),
    ("GET", "127.0.0.1:4569", "", "", [("list-type", "2"), ("start-after", "a b+c/\u00e9")]),
    ("PUT", "127.0.0.1:4569", "with space/and+plus/caf\u00e9 \u20ac \U0001F600.txt", "x", []),
    ("DELETE", "s3.amazonaws.com", "a/b/c", "", []),
    ("HEAD", "127.0.0.1:4569", "tilde~and.dots-_/x", "", []),
]


def botocore_auth(method, url, body):
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import botocore.auth as auth

    class FixedDatetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return datetime.datetime(2015, 8, 30, 12, 36, 0)
    saved = auth.datetime.datetime
    auth.datetime.datetime = FixedDatetime
    try:
        request = AWSRequest(method=method, url=url, data=body.encode())
        S3SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                    "s3", "us-east-1").add_auth(request)
    finally:
        auth.datetime.datetime = saved
    return request.headers["Authorization"]


def main(t):
    try:
        import botocore  # noqa: F401
    except ImportError:
        raise lhtest.Skip("python3-botocore is not installed (apt-get install python3-botocore)")
    harness = os.path.join(t.build, "lh_storage_harness")
    if not os.access(harness, os.X_OK):
        raise lhtest.Skip("%s is not built" % harness)
    for method, host, key, body, query in TABLE:
        args = [harness, "--sign", method, host, key, body]
        for name, value in query:
            args += [name, value]
        out = subprocess.run(args, capture_output=True, check=True).stdout.decode().splitlines()
        path, ours = out[0], out[1]
        theirs = botocore_auth(method, "http://" + host + path, body)
        t.check(ours == theirs, "%s %s: Authorization equals botocore's" % (method, path[:60]),
                "\nours:     %s\nbotocore: %s" % (ours, theirs))


if __name__ == "__main__":
    lhtest.run(main, budget=60)
