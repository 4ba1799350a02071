"""The platform for real: Spark + Delta, Spark + Kafka (the embedded broker), `aegis tables`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka import KafkaProducer
from pyspark.sql import functions as F

from conf.settings import Settings
from lakehouse.delta_io import append_idempotent, checkpoint_if_behind, ensure_table, read_table, table_status
from lakehouse.tables import RUN_LOG, TRANSACTIONS

pytestmark = pytest.mark.integration


def test_delta_write_read_and_idempotent_append(spark, settings: Settings) -> None:
    root = settings.lakehouse_root / "platform"
    rows = [("r1", "backfill", "succeeded")]
    df = spark.createDataFrame(rows, "run_id string, job string, status string").select(
        "*",
        F.current_timestamp().alias("started_at"),
        F.current_timestamp().alias("finished_at"),
        F.lit("{}").alias("params"),
        F.lit(None).cast("string").alias("summary"),
    )
    append_idempotent(df, RUN_LOG, root, "platform-test", 0)
    append_idempotent(df, RUN_LOG, root, "platform-test", 0)  # replay of the same version: skipped
    append_idempotent(df, RUN_LOG, root, "platform-test", 1)
    back = read_table(spark, RUN_LOG, root)
    assert back.count() == 2
    assert back.select("run_id").distinct().collect()[0][0] == "r1"
    status = table_status(spark, RUN_LOG, root)
    assert status.exists and status.rows == 2 and status.version == 2  # create + 2 appends


def test_a_table_is_checkpointed_once_enough_commits_landed(spark, settings: Settings) -> None:
    root = settings.lakehouse_root / "platform-checkpoint"
    assert checkpoint_if_behind(spark, RUN_LOG, root, every=1) is None  # no table yet
    df = spark.createDataFrame([("r1", "stream", "running")], "run_id string, job string, status string").select(
        "*", F.current_timestamp().alias("started_at"), F.current_timestamp().alias("finished_at"),
        F.lit("{}").alias("params"), F.lit(None).cast("string").alias("summary"))
    for version in range(3):
        append_idempotent(df, RUN_LOG, root, "checkpoint-test", version)
    log_dir = Path(RUN_LOG.path(root)) / "_delta_log"
    assert checkpoint_if_behind(spark, RUN_LOG, root, every=5) is None  # 4 commits: the create and 3 appends
    assert not list(log_dir.glob("*.checkpoint.parquet"))
    assert checkpoint_if_behind(spark, RUN_LOG, root, every=4) == 3
    assert json.loads((log_dir / "_last_checkpoint").read_text())["version"] == 3
    assert checkpoint_if_behind(spark, RUN_LOG, root, every=1) is None  # nothing new since
    append_idempotent(df, RUN_LOG, root, "checkpoint-test", 3)
    assert checkpoint_if_behind(spark, RUN_LOG, root, every=1) == 4
    assert read_table(spark, RUN_LOG, root).count() == 4


def test_contract_declares_partitioning(spark, settings: Settings) -> None:
    root = settings.lakehouse_root / "platform"
    table = ensure_table(spark, TRANSACTIONS, root)
    detail = table.detail().first()
    assert list(detail["partitionColumns"]) == ["event_date"]
    for key, value in TRANSACTIONS.properties.items():
        assert detail["properties"][key] == value, key


def test_an_existing_table_gets_the_contracts_new_properties(spark, settings: Settings) -> None:
    from dataclasses import replace

    root = settings.lakehouse_root / "platform-properties"
    ensure_table(spark, RUN_LOG, root)
    newer = replace(RUN_LOG, properties={**RUN_LOG.properties, "delta.dataSkippingStatsColumns": "run_id,job"})
    properties = ensure_table(spark, newer, root).detail().first()["properties"]
    assert properties["delta.dataSkippingStatsColumns"] == "run_id,job"
    assert properties["delta.checkpointInterval"] == RUN_LOG.properties["delta.checkpointInterval"]


def test_writers_creating_one_table_at_once_all_get_it(spark, settings: Settings) -> None:
    """The stream and a backfill on a new lakehouse both create silver: the loser of the create
    commit must find the winner's table, not fail (it did, with ProtocolChangedException)."""
    import threading

    def create(root: object, barrier: threading.Barrier, errors: list[BaseException]) -> None:
        barrier.wait()
        try:
            ensure_table(spark, RUN_LOG, root)  # type: ignore[arg-type]
        except BaseException as error:
            errors.append(error)

    for attempt in range(6):
        root = settings.lakehouse_root / f"concurrent-create-{attempt}"
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=create, args=(root, barrier, errors)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert ensure_table(spark, RUN_LOG, root).toDF().columns == [c.name for c in RUN_LOG.columns]


def test_a_location_with_files_but_no_table_is_refused_by_name(spark, settings: Settings, monkeypatch) -> None:
    """Stray files where a table belongs: a clear error naming the path, after the short wait a
    concurrent creator's first commit would need."""
    from lakehouse import delta_io

    monkeypatch.setattr(delta_io, "_CONCURRENT_CREATE_WAIT_SECONDS", 0.5)
    root = settings.lakehouse_root / "stray-files"
    location = Path(RUN_LOG.path(root))
    location.mkdir(parents=True)
    (location / "notes.txt").write_text("not a table")
    with pytest.raises(delta_io.ContractError, match="holds files but no Delta table"):
        ensure_table(spark, RUN_LOG, root)
    assert (location / "notes.txt").read_text() == "not a table"


def test_local_files_go_through_the_file_system_without_shell_outs(spark, settings: Settings) -> None:
    """Both Hadoop entry points (FileSystem for data files, FileContext for checkpoint and Delta log
    renames) resolve `file:` to dev.aegis.fs, and a Delta commit through them reads back."""
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    uri = jvm.java.net.URI("file:///")
    assert jvm.org.apache.hadoop.fs.FileSystem.get(uri, conf).getClass().getName() == "dev.aegis.fs.NioLocalFileSystem"
    context = jvm.org.apache.hadoop.fs.FileContext.getFileContext(uri, conf)
    assert context.getDefaultFileSystem().getClass().getName() == "dev.aegis.fs.NioLocalFs"
    path = settings.lakehouse_root / "platform-fs"
    spark.range(3).write.format("delta").mode("append").save(str(path))
    assert spark.read.format("delta").load(str(path)).count() == 3
    assert (path / "_delta_log" / "00000000000000000000.json").stat().st_mode & 0o444 == 0o444


def test_spark_reads_a_kafka_topic(spark, settings: Settings, kafka_broker) -> None:
    topic = "platform.check"
    kafka_broker.ensure_topics({topic: 2})
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    for i in range(50):
        producer.send(topic, key=f"c{i % 5}".encode(), value=json.dumps({"i": i}).encode())
    producer.flush()
    producer.close()
    df = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    values = sorted(json.loads(r.value)["i"] for r in df.select(F.col("value").cast("string")).collect())
    assert values == list(range(50))
