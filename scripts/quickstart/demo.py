"""Sample clients for scripts/quickstart.sh, written with confluent-kafka (librdkafka).

usage:
  demo.py topics  --bootstrap B NAME:PARTITIONS ...     create topics (existing ones are kept)
  demo.py produce --bootstrap B [--rate N] [--stats F]  write order and payment records until
                                                        SIGTERM
  demo.py consume --bootstrap B --group G --topic T [--stats F]
                                                        consume T in group G, committing
                                                        offsets, until SIGTERM
  demo.py peek    --bootstrap B --topic T [--count N]   print the first N records of T
  demo.py offsets --bootstrap B --group G --topic T    print G's committed offsets for T
                                                        (reads them without joining G)
  demo.py check   --source B --report verify.json NAME:PARTITIONS ...
                  [--target B --group G --group-topic T]
                                                        check a `strait verify --json` report
                                                        against the source's offsets, and that
                                                        G's committed offsets for T are the
                                                        same on the target

`produce` writes about N records a second (default 50): two thirds to `orders` (keyed by
customer, so they spread over the partitions), one third to `payments` (keyed by order), JSON
values, three headers each, lz4-compressed batches from an idempotent producer. `--stats F`
keeps a one-line summary in F, rewritten every second.

`peek` reads from the beginning of every partition without joining a group; it sets
fetch.wait.max.ms=10 because tansu 0.6.0 mishandles longer fetch waits, so it works on both
Kafka and tansu.
"""

import argparse
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import deque
from datetime import datetime, timezone

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

STOP = False


def on_term(_signum, _frame):
    global STOP
    STOP = True


def log(msg):
    print(f"{datetime.now().strftime('%H:%M:%S')} {msg}", flush=True)


def write_stats(path, line):
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(line + "\n")
    os.replace(tmp, path)


def topic_specs(specs):
    out = []
    for spec in specs:
        name, _, parts = spec.partition(":")
        if not name or not parts.isdigit():
            sys.exit(f"demo.py: expected NAME:PARTITIONS, got {spec!r}")
        out.append((name, int(parts)))
    return out


def cmd_topics(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "log_level": 2})
    wanted = topic_specs(args.topics)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=parts, replication_factor=1) for name, parts in wanted],
        operation_timeout=30,
    )
    for name, fut in futures.items():
        try:
            fut.result(timeout=60)
            log(f"created topic {name}")
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            log(f"topic {name} already exists")


CUSTOMERS = [f"customer-{i:04d}" for i in range(1, 201)]
PRODUCTS = ["kettle", "teapot", "mug", "strainer", "tea-tin", "cosy", "saucer", "spoon"]
METHODS = ["card", "iban", "voucher"]


def order_record(n):
    customer = random.choice(CUSTOMERS)
    items = [
        {"sku": random.choice(PRODUCTS), "qty": random.randint(1, 4), "price_cents": random.randint(199, 4999)}
        for _ in range(random.randint(1, 3))
    ]
    value = {
        "order_id": f"order-{n:08d}",
        "customer": customer,
        "items": items,
        "total_cents": sum(i["qty"] * i["price_cents"] for i in items),
        "currency": "EUR",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    return customer, value


def payment_record(n, order):
    order_id, total_cents = order
    value = {
        "payment_id": f"payment-{n:08d}",
        "order_id": order_id,
        "amount_cents": total_cents,
        "method": random.choice(METHODS),
        "status": "captured",
    }
    return order_id, value


def cmd_produce(args):
    signal.signal(signal.SIGTERM, on_term)
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "quickstart-producer",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
            "log_level": 2,
        }
    )
    counts = {"orders": 0, "payments": 0}
    failed = [0]

    def delivered(err, msg):
        if err is not None:
            failed[0] += 1
            if failed[0] <= 10:
                log(f"delivery failed: {err}")
        else:
            counts[msg.topic()] += 1

    interval = 1.0 / args.rate
    next_at = time.monotonic()
    orders = payments = 0
    unpaid = deque(maxlen=1000)  # (order_id, total_cents) of recent orders
    last_stats = last_log = time.monotonic()
    log(f"producing about {args.rate} records/s to orders and payments on {args.bootstrap}")
    while not STOP:
        if orders <= 2 * payments:
            orders += 1
            topic, (key, value) = "orders", order_record(orders)
            unpaid.append((value["order_id"], value["total_cents"]))
        else:
            payments += 1
            topic, (key, value) = "payments", payment_record(payments, unpaid.popleft())
        headers = [
            ("content-type", b"application/json"),
            ("trace-id", uuid.uuid4().hex.encode()),
            ("producer", b"strait-quickstart"),
        ]
        while True:
            try:
                producer.produce(
                    topic, key=key.encode(), value=json.dumps(value).encode(), headers=headers, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        now = time.monotonic()
        if now - last_stats >= 1:
            last_stats = now
            write_stats(args.stats, f"orders={counts['orders']} payments={counts['payments']} failed={failed[0]}")
        if now - last_log >= 10:
            last_log = now
            log(f"delivered orders={counts['orders']} payments={counts['payments']} failed={failed[0]}")
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1:
            next_at = time.monotonic()  # fell behind (broker slow): do not burst to catch up
    left = producer.flush(30)
    write_stats(args.stats, f"orders={counts['orders']} payments={counts['payments']} failed={failed[0]}")
    log(f"stopped: delivered orders={counts['orders']} payments={counts['payments']} failed={failed[0]} unflushed={left}")
    return 1 if left else 0


def cmd_consume(args):
    signal.signal(signal.SIGTERM, on_term)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": f"quickstart-{args.group}",
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    consumer.subscribe([args.topic])
    consumed = committed = 0
    pending = False
    last_commit = last_log = time.monotonic()
    log(f"consumer group {args.group} reading {args.topic} on {args.bootstrap}")
    while not STOP:
        msg = consumer.poll(0.2)
        if msg is not None:
            if msg.error():
                log(f"consumer error: {msg.error()}")
            else:
                json.loads(msg.value())  # "process" the order
                consumed += 1
                pending = True
        now = time.monotonic()
        if pending and now - last_commit >= 1:
            try:
                consumer.commit(asynchronous=False)
                committed = consumed
                pending = False
            except KafkaException as e:
                log(f"commit failed: {e}")
            last_commit = now
            write_stats(args.stats, f"consumed={consumed} committed={committed}")
        if now - last_log >= 10:
            last_log = now
            log(f"consumed={consumed} committed={committed}")
    if pending:
        try:
            consumer.commit(asynchronous=False)
            committed = consumed
        except KafkaException as e:
            log(f"final commit failed: {e}")
    consumer.close()
    write_stats(args.stats, f"consumed={consumed} committed={committed}")
    log(f"stopped: consumed={consumed} committed={committed}")
    return 0


def fmt_bytes(b):
    if b is None:
        return "null"
    try:
        return b.decode()
    except UnicodeDecodeError:
        return b.hex()


def cmd_peek(args):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "strait-quickstart-peek",  # required by librdkafka; never joined or committed
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,  # tansu 0.6.0 needs <= 10
            "log_level": 2,
        }
    )
    try:
        meta = consumer.list_topics(args.topic, timeout=10).topics.get(args.topic)
    except KafkaException as e:
        print(f"cannot reach {args.bootstrap}: {e}", file=sys.stderr)
        return 1
    if meta is None or meta.error is not None or not meta.partitions:
        print(f"topic {args.topic} not found on {args.bootstrap}", file=sys.stderr)
        return 1
    consumer.assign([TopicPartition(args.topic, p, -2) for p in sorted(meta.partitions)])  # -2: beginning
    shown = 0
    idle_until = time.monotonic() + args.wait
    while shown < args.count and time.monotonic() < idle_until:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            print(f"error: {msg.error()}", file=sys.stderr)
            continue
        idle_until = time.monotonic() + args.wait
        ts_type, ts = msg.timestamp()
        when = "-" if ts_type == TIMESTAMP_NOT_AVAILABLE else datetime.fromtimestamp(ts / 1000).strftime("%H:%M:%S.%f")[:-3]
        headers = ", ".join(f"{k}={fmt_bytes(v)}" for k, v in (msg.headers() or []))
        print(f"{msg.topic()}[{msg.partition()}]@{msg.offset()} {when} key={fmt_bytes(msg.key())}")
        print(f"    headers: {headers}")
        print(f"    value:   {fmt_bytes(msg.value())}")
        shown += 1
    consumer.close()
    if shown == 0:
        print(f"no records in {args.topic} on {args.bootstrap} (waited {args.wait}s)", file=sys.stderr)
        return 1
    return 0


def committed_offsets(bootstrap, group, topic):
    """{partition: committed offset (-1001 if none)} of group for topic, without joining it."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,  # only OffsetFetch: never subscribes, so never joins the group
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise LookupError(f"topic {topic} not found on {bootstrap}")
        tps = consumer.committed([TopicPartition(topic, p) for p in sorted(meta.partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def cmd_offsets(args):
    try:
        offsets = committed_offsets(args.bootstrap, args.group, args.topic)
    except (KafkaException, LookupError) as e:
        print(f"cannot read offsets from {args.bootstrap}: {e}", file=sys.stderr)
        return 1
    for partition, offset in offsets.items():
        print(f"{args.group} {args.topic}[{partition}] committed offset {'none' if offset < 0 else offset}")
    return 0


def cmd_check(args):
    with open(args.report) as f:
        report = json.load(f)
    consumer = Consumer({"bootstrap.servers": args.source, "group.id": "strait-quickstart-check", "log_level": 2})
    problems = []
    total = 0
    by_tp = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    for name, parts in topic_specs(args.topics):
        for part in range(parts):
            p = by_tp.get((name, part))
            if p is None:
                problems.append(f"{name}-{part}: not in the verify report (never mirrored)")
                continue
            low, high = consumer.get_watermark_offsets(TopicPartition(name, part), timeout=10)
            on_source = high - low
            total += p["matched"]
            line = f"{name}-{part}: source holds {on_source}, verify matched {p['matched']}, lag {p['lag_records']}"
            print(f"check: {line}")
            if p["differences"]:
                problems.append(f"{name}-{part}: {p['differences']} differences: {p['details']}")
            if p["lag_records"] != 0 or p["matched"] != on_source:
                problems.append(f"{line} (expected everything mirrored)")
            if on_source == 0:
                problems.append(f"{name}-{part}: no records were produced")
            if p["status"] != "active":
                problems.append(f"{name}-{part}: mirror status {p['status']}")
    consumer.close()
    if args.group:
        try:
            src = committed_offsets(args.source, args.group, args.group_topic)
            tgt = committed_offsets(args.target, args.group, args.group_topic)
        except (KafkaException, LookupError) as e:
            problems.append(f"cannot read group {args.group}'s offsets: {e}")
        else:
            print(f"check: group {args.group} on {args.group_topic}: source {src}, target {tgt}")
            if src != tgt or any(o < 0 for o in src.values()):
                problems.append(f"group {args.group}: target offsets {tgt} differ from the source's {src}")
    if not report.get("identical"):
        problems.append("verify reported differences")
    for p in problems:
        print(f"check: PROBLEM {p}")
    if problems:
        return 1
    print(f"check: ok, {total} records identical on source and target")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("topics")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("topics", nargs="+")
    p = sub.add_parser("produce")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--stats")
    p = sub.add_parser("consume")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--stats")
    p = sub.add_parser("peek")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--wait", type=float, default=5, help="stop after this many seconds without a record")
    p = sub.add_parser("offsets")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p = sub.add_parser("check")
    p.add_argument("--source", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--target")
    p.add_argument("--group")
    p.add_argument("--group-topic")
    p.add_argument("topics", nargs="+")
    args = ap.parse_args()
    if args.cmd == "produce" and args.rate <= 0:
        ap.error("--rate must be positive")
    if args.cmd == "check" and args.group and not (args.target and args.group_topic):
        ap.error("--group needs --target and --group-topic")
    return {"topics": cmd_topics, "produce": cmd_produce, "consume": cmd_consume, "peek": cmd_peek, "offsets": cmd_offsets, "check": cmd_check}[
        args.cmd
    ](args)


if __name__ == "__main__":
    sys.exit(main())
