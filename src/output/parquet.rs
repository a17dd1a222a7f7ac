//! Parquet copies of measurements.csv and verdicts.csv (`run --format parquet`), so
//! that large collections load fast into any engine.
//!
//! They are written at the end of a run from the CSV files, which stay the run's
//! crash-safe record: a Parquet file cannot be appended to, so streaming into one would
//! leave a killed run with nothing readable. Columns keep the CSV names; numbers,
//! flags and times get their types, and an empty cell is a null.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

const BATCH_ROWS: usize = 8192;

/// The Arrow type of a column of our CSV files.
fn type_of(column: &str) -> DataType {
    match column {
        "measured_at" => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        "runtime_ms" => DataType::Float64,
        "replies" | "http_status" | "body_length" | "tries" => DataType::Int64,
        "control_sni" | "local_failure" | "controlled" => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// Writes measurements.parquet and verdicts.parquet beside a run's CSV files.
pub fn write_run(dir: &Path) -> anyhow::Result<()> {
    for table in ["measurements", "verdicts"] {
        csv_to_parquet(
            &dir.join(format!("{table}.csv")),
            &dir.join(format!("{table}.parquet")),
        )?;
    }
    Ok(())
}

/// Copies a CSV file of ours into a Parquet file; returns the rows copied.
pub fn csv_to_parquet(csv_path: &Path, parquet_path: &Path) -> anyhow::Result<u64> {
    let mut reader = csv::Reader::from_path(csv_path)
        .with_context(|| format!("cannot read {}", csv_path.display()))?;
    let header = reader.headers()?.clone();
    let schema = Arc::new(Schema::new(
        header
            .iter()
            .map(|name| Field::new(name, type_of(name), true))
            .collect::<Vec<_>>(),
    ));
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    // Written aside and renamed: a copy stopped half-way (Ctrl-C, a full disk) leaves no
    // half file that a reader would take for the table.
    crate::rundir::replace_with(parquet_path, |file| {
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))?;
        copy_rows(reader, csv_path, &schema, writer)
    })
}

/// The rows of `reader` (of `csv_path`) into `writer`, in batches; gives their number.
fn copy_rows<W: std::io::Write + Send>(
    mut reader: csv::Reader<File>,
    csv_path: &Path,
    schema: &Arc<Schema>,
    mut writer: ArrowWriter<W>,
) -> anyhow::Result<u64> {
    let mut columns = builders(schema);
    let mut rows = 0u64;
    for (index, record) in reader.records().enumerate() {
        let record =
            record.with_context(|| format!("{}:{}: bad row", csv_path.display(), index + 2))?;
        for ((builder, field), value) in columns.iter_mut().zip(schema.fields()).zip(record.iter())
        {
            append(builder.as_mut(), field.data_type(), value).with_context(|| {
                format!(
                    "{}:{}: column {}: {value:?}",
                    csv_path.display(),
                    index + 2,
                    field.name()
                )
            })?;
        }
        rows += 1;
        if columns[0].len() == BATCH_ROWS {
            writer.write(&batch(schema, &mut columns)?)?;
        }
    }
    if columns.first().is_some_and(|c| !c.is_empty()) {
        writer.write(&batch(schema, &mut columns)?)?;
    }
    writer.close()?;
    Ok(rows)
}

fn builders(schema: &Schema) -> Vec<Box<dyn ArrayBuilder>> {
    schema
        .fields()
        .iter()
        .map(|field| -> Box<dyn ArrayBuilder> {
            match field.data_type() {
                DataType::Timestamp(..) => {
                    Box::new(TimestampMillisecondBuilder::new().with_timezone("UTC"))
                }
                DataType::Float64 => Box::new(Float64Builder::new()),
                DataType::Int64 => Box::new(Int64Builder::new()),
                DataType::Boolean => Box::new(BooleanBuilder::new()),
                _ => Box::new(StringBuilder::new()),
            }
        })
        .collect()
}

fn append(builder: &mut dyn ArrayBuilder, data_type: &DataType, value: &str) -> anyhow::Result<()> {
    let any = builder.as_any_mut();
    let empty = value.is_empty();
    match data_type {
        DataType::Timestamp(..) => {
            let b = any
                .downcast_mut::<TimestampMillisecondBuilder>()
                .expect("built for the type");
            match empty {
                true => b.append_null(),
                false => {
                    b.append_value(chrono::DateTime::parse_from_rfc3339(value)?.timestamp_millis())
                }
            }
        }
        DataType::Float64 => {
            let b = any
                .downcast_mut::<Float64Builder>()
                .expect("built for the type");
            b.append_option((!empty).then(|| value.parse()).transpose()?);
        }
        DataType::Int64 => {
            let b = any
                .downcast_mut::<Int64Builder>()
                .expect("built for the type");
            b.append_option((!empty).then(|| value.parse()).transpose()?);
        }
        DataType::Boolean => {
            let b = any
                .downcast_mut::<BooleanBuilder>()
                .expect("built for the type");
            b.append_option((!empty).then(|| value.parse()).transpose()?);
        }
        _ => any
            .downcast_mut::<StringBuilder>()
            .expect("built for the type")
            .append_value(value),
    }
    Ok(())
}

fn batch(
    schema: &Arc<Schema>,
    columns: &mut [Box<dyn ArrayBuilder>],
) -> anyhow::Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = columns.iter_mut().map(|b| b.finish()).collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn a_copy_that_fails_half_way_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("measurements.csv");
        let mut rows = String::from("run_id,runtime_ms\n");
        for _ in 0..BATCH_ROWS + 1 {
            rows.push_str("r,1.5\n");
        }
        rows.push_str("r,not a number\n");
        std::fs::write(&csv_path, rows).unwrap();
        let parquet_path = dir.path().join("measurements.parquet");
        let err = csv_to_parquet(&csv_path, &parquet_path).unwrap_err();
        assert!(format!("{err:#}").contains("column runtime_ms"), "{err:#}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["measurements.csv"]);
    }

    #[test]
    fn typed_columns_and_nulls_survive_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("measurements.csv");
        std::fs::write(
            &csv_path,
            "run_id,measured_at,step,runtime_ms,http_status,control_sni,title\n\
             r,2026-11-25T10:41:07.113Z,http,48.5,200,,\"Hello, world\"\n\
             r,2026-11-25T10:41:08.000Z,tls_handshake,3.0,,true,\n",
        )
        .unwrap();
        let parquet_path = dir.path().join("measurements.parquet");
        assert_eq!(csv_to_parquet(&csv_path, &parquet_path).unwrap(), 2);
        let mut reader =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&parquet_path).unwrap())
                .unwrap()
                .build()
                .unwrap();
        let batch = reader.next().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let at = batch.column(1).as_primitive::<TimestampMillisecondType>();
        assert_eq!(at.value(0), 1_795_603_267_113);
        assert_eq!(batch.column(3).as_primitive::<Float64Type>().value(0), 48.5);
        let status = batch.column(4).as_primitive::<Int64Type>();
        assert_eq!((status.value(0), status.is_null(1)), (200, true));
        assert!(batch.column(5).as_boolean().value(1));
        assert_eq!(batch.column(6).as_string::<i32>().value(0), "Hello, world");
    }
}
