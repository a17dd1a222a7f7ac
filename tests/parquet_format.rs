//! `run --format parquet`: the measurement and verdict tables also as Parquet, with the
//! same rows as their CSV files.

#[allow(dead_code)]
mod common;

use std::fs::File;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use common::probe::run_probe;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn parquet_tables_hold_the_csv_rows() {
    let ca = Ca::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_pem(dir.path()).unwrap();
    let (chain, key) = ca.issue(&["canary.test", "good.test"]).unwrap();
    let healthy = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
        .await
        .unwrap();
    let resolver = DnsServer::spawn(&[
        ("canary.test", DnsBehaviour::Answer(vec![LOCALHOST])),
        ("good.test", DnsBehaviour::Answer(vec![LOCALHOST])),
        ("nx.test", DnsBehaviour::NxDomain),
    ])
    .unwrap();
    let targets = format!(
        "[settings]\ncanary = \"canary.test\"\ntls_ports = [{}]\ntcp_ports = []\n\n[[service]]\nname = \"svc\"\ndomains = [\"good.test\", \"nx.test\"]\n",
        healthy.port()
    );
    let resolver = format!("udp://{resolver}");
    let run = run_probe(
        &targets,
        &[
            "--resolver",
            &resolver,
            "--ca-file",
            ca_file.to_str().unwrap(),
            "--format",
            "parquet",
        ],
    )
    .await;
    assert!(run.status.success(), "{run}");
    for table in ["measurements", "verdicts"] {
        let csv_rows = csv::Reader::from_path(run.out.join(format!("{table}.csv")))
            .unwrap()
            .records()
            .count();
        let file = File::open(run.out.join(format!("{table}.parquet")))
            .unwrap_or_else(|e| panic!("{table}.parquet: {e}\n{run}"));
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let parquet_rows = reader.metadata().file_metadata().num_rows();
        assert!(csv_rows > 0);
        assert_eq!(parquet_rows as usize, csv_rows, "{table}");
    }
}
