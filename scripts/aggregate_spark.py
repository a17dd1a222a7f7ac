"""censorprobe's aggregation as a PySpark job, for collections that outgrow one machine.

The same groups, columns and rows as `censorprobe aggregate --by service,probe_cc,probe_asn,day`
and scripts/aggregate.sql. Reads verdicts.csv or verdicts.parquet files directly.

    spark-submit scripts/aggregate_spark.py 's3a://bucket/runs/*/*/verdicts.csv' out/
    spark-submit scripts/aggregate_spark.py --parquet 'hdfs:///runs/*/*/verdicts.parquet' out/

Unlike the binary, it does not check each run's schema_version nor what a run is
(docs/data.md): filter the run.json files first when mixing software versions. Schema-1 and
schema-2 files (nine or thirteen columns) read together with the mergeSchema option of
Parquet; for CSV, read each layout apart and union them by name.
"""

import argparse

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

VERDICTS = ["ok", "blocked", "anomaly", "down", "inconclusive"]
# The verdicts counted by blocking kind: blocked_<kind>, then anomaly_<kind>.
FLAGGED = ["blocked", "anomaly"]
KINDS = [
    "dns-hijack", "dns-nxdomain", "dns-failure", "dns-injection", "tcp-blackhole",
    "tcp-reset", "tcp-refused", "protocol-filtered", "tls-reset", "tls-timeout", "tls-mitm",
    "tls-failure", "tls-stall", "tls-fingerprint", "ech-blocked", "http-blockpage",
    "http-diff", "http-failure",
    "throttled", "quic-blocked",
]


def aggregate(verdicts):
    counts = [F.count(F.lit(1)).alias("targets")]
    counts += [F.sum(F.when(F.col("verdict") == v, 1).otherwise(0)).alias(v) for v in VERDICTS]
    counts += [
        F.sum(F.when((F.col("verdict") == v) & (F.col("blocking") == k), 1).otherwise(0))
        .alias(v + "_" + k.replace("-", "_"))
        for v in FLAGGED
        for k in KINDS
    ]
    grouped = (
        verdicts.withColumn("day", F.substring(F.col("measured_at").cast("string"), 1, 10))
        .groupBy("service", "probe_cc", "probe_asn", "day")
        .agg(*counts)
    )
    shares = [F.round(F.col(v) / F.col("targets"), 4).alias(v + "_share") for v in VERDICTS]
    kinds = [v + "_" + k.replace("-", "_") for v in FLAGGED for k in KINDS]
    return grouped.select(
        "service", "probe_cc", "probe_asn", "day", "targets", *VERDICTS, *shares, *kinds
    ).orderBy("service", "probe_cc", "probe_asn", "day")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="a path or glob of verdicts files")
    parser.add_argument("output", help="a directory for the CSV result")
    parser.add_argument("--parquet", action="store_true", help="the input is Parquet")
    args = parser.parse_args()
    spark = SparkSession.builder.appName("censorprobe-aggregate").getOrCreate()
    if args.parquet:
        verdicts = spark.read.parquet(args.input)
    else:
        verdicts = spark.read.csv(args.input, header=True, multiLine=True, escape='"')
    verdicts = verdicts.fillna("", subset=["blocking"])
    aggregate(verdicts).coalesce(1).write.mode("overwrite").csv(args.output, header=True)
    spark.stop()


if __name__ == "__main__":
    main()
