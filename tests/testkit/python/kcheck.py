"""Small confluent-kafka checks used by strait-testkit's self-tests.

usage:
  kcheck.py roundtrip BOOTSTRAP TOPIC [KEY=VALUE ...]   create TOPIC if missing, produce 3
                                                        records, consume them back
  kcheck.py produce BOOTSTRAP TOPIC N [KEY=VALUE ...]   create TOPIC if missing, produce
                                                        value-0 .. value-(N-1)
  kcheck.py consume BOOTSTRAP TOPIC N [KEY=VALUE ...]   read N records from the beginning,
                                                        expect value-0 .. value-(N-1)
  kcheck.py auth BOOTSTRAP [KEY=VALUE ...]              fetch metadata

KEY=VALUE pairs are librdkafka settings (security.protocol, sasl.*, ssl.ca.location ...).
Prints "ok ..." and exits 0 on success; exits 3 after printing "auth-failed: ..." when the
broker rejects the credentials; exits 1 on any other failure.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 60


class AuthFailed(Exception):
    pass


def settings(bootstrap, pairs):
    auth_errors = []

    def on_error(err):
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
            auth_errors.append(err.str())

    # log_level 2: keep librdkafka's per-retry connection errors off stderr.
    conf = {"bootstrap.servers": bootstrap, "error_cb": on_error, "log_level": 2}
    conf.update(pair.split("=", 1) for pair in pairs)
    return conf, auth_errors


def check_auth(auth_errors):
    if auth_errors:
        raise AuthFailed(auth_errors[0])


def metadata(conf, auth_errors):
    """AdminClient + topic names; raises AuthFailed as soon as the broker rejects us."""
    admin = AdminClient(conf)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            return admin, admin.list_topics(timeout=2).topics
        except KafkaException:
            admin.poll(0.1)  # serves error_cb
            check_auth(auth_errors)
            if time.monotonic() > deadline:
                raise


def ensure_topic(conf, auth_errors, topic):
    admin, topics = metadata(conf, auth_errors)
    if topic not in topics:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
            timeout=TIMEOUT_S
        )


def produce(conf, auth_errors, topic, n):
    ensure_topic(conf, auth_errors, topic)
    producer = Producer({**conf, "acks": "all", "linger.ms": 0})
    failures = []
    for i in range(n):
        producer.produce(
            topic,
            key=f"key-{i}".encode(),
            value=f"value-{i}".encode(),
            on_delivery=lambda err, _msg: err and failures.append(err),
        )
    remaining = producer.flush(TIMEOUT_S)
    check_auth(auth_errors)
    if remaining or failures:
        raise RuntimeError(f"produce failed: {remaining} not delivered, errors {failures}")


def consume(conf, auth_errors, topic, n):
    consumer = Consumer({
        **conf,
        "group.id": f"{topic}-kcheck-{time.monotonic_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        # tansu only answers fetches promptly with a tiny max wait.
        "fetch.wait.max.ms": 10,
    })
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(got) < n and time.monotonic() < deadline:
            check_auth(auth_errors)
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            got.append(msg.value())
    finally:
        consumer.close()
    expected = [f"value-{i}".encode() for i in range(n)]
    if got != expected:
        raise RuntimeError(f"consumed {got!r}, expected {expected!r}")


def main(argv):
    cmd = argv[1]
    if cmd == "auth":
        conf, auth_errors = settings(argv[2], argv[3:])
        metadata(conf, auth_errors)
        print("ok authenticated")
    elif cmd == "roundtrip":
        conf, auth_errors = settings(argv[2], argv[4:])
        produce(conf, auth_errors, argv[3], 3)
        consume(conf, auth_errors, argv[3], 3)
        print("ok 3")
    elif cmd in ("produce", "consume"):
        conf, auth_errors = settings(argv[2], argv[5:])
        n = int(argv[4])
        (produce if cmd == "produce" else consume)(conf, auth_errors, argv[3], n)
        print(f"ok {n}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except AuthFailed as e:
        print(f"auth-failed: {e}")
        sys.exit(3)
    except Exception as e:  # noqa: BLE001 - report every failure the same way
        print(f"failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
