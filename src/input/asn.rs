//! `--asn-db`: which autonomous system (and country, where the database knows) an
//! address belongs to. Reads MaxMind-format databases (GeoLite2-ASN, DB-IP, the
//! ip-location-db MMDBs, whose country records say `country_code`) and CSVs of ranges
//! `start,end,asn[,organisation[,country]]` (the ip-location-db CSV layout), so that a
//! volunteer can use freely licensed files. A directory of them is read as one database:
//! the freely licensed tables come apart (ASNs in one package, countries in another), so
//! each address takes its AS from the first file that knows it and its country likewise.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsnInfo {
    pub asn: u32,
    pub country: Option<String>,
}

/// One database, from one file or a directory of them.
pub struct AsnDb {
    sources: Vec<Source>,
}

enum Source {
    Mmdb(maxminddb::Reader<Vec<u8>>),
    Ranges(Ranges),
}

/// An ISO 3166 alpha-2 code.
type Country = [u8; 2];

/// Ranges sorted by start, IPv4 apart from IPv6: the 400,000 IPv4 rows of a full table
/// then take 16 bytes each rather than 48, which matters on a router.
#[derive(Default)]
struct Ranges {
    v4: Vec<Range<u32>>,
    v6: Vec<Range<u128>>,
}

struct Range<K> {
    start: K,
    end: K,
    asn: u32,
    country: Option<Country>,
}

/// What the range holding `key` in `table`, sorted by start, says.
fn find<K: Ord + Copy>(table: &[Range<K>], key: K) -> Found {
    let i = table.partition_point(|r| r.start <= key).checked_sub(1);
    match i.map(|i| &table[i]).filter(|r| key <= r.end) {
        Some(range) => Found {
            asn: Some(range.asn),
            country: range.country,
        },
        None => Found::default(),
    }
}

/// A table sorted for [`find`], its spare capacity given back.
fn settle<K: Ord + Copy>(table: &mut Vec<Range<K>>) {
    table.sort_by_key(|r| r.start);
    table.shrink_to_fit();
}

fn country(code: &str) -> Option<Country> {
    let code = code.trim();
    let bytes: [u8; 2] = code.as_bytes().try_into().ok()?;
    bytes
        .iter()
        .all(u8::is_ascii_alphabetic)
        .then(|| bytes.map(|b| b.to_ascii_uppercase()))
}

#[derive(Deserialize)]
struct MmdbRecord {
    autonomous_system_number: Option<u32>,
    /// MaxMind's layout.
    country: Option<MmdbCountry>,
    /// ip-location-db's layout.
    country_code: Option<String>,
}

#[derive(Deserialize)]
struct MmdbCountry {
    iso_code: Option<String>,
}

/// What one file knows of an address.
#[derive(Default)]
struct Found {
    asn: Option<u32>,
    country: Option<Country>,
}

/// The database a command uses: `given` (`--asn-db`), which must open; else `found`
/// (the data directory's `ip-db`) where it exists. That one is read without this
/// command asking for it, so a file there that cannot be read is warned of and the
/// command goes on without a database, as it would have without the directory.
pub fn load(
    given: Option<&Path>,
    found: Option<PathBuf>,
) -> anyhow::Result<Option<(PathBuf, AsnDb)>> {
    if let Some(path) = given {
        return AsnDb::open(path).map(|db| Some((path.to_path_buf(), db)));
    }
    let Some(dir) = found.filter(|dir| dir.is_dir()) else {
        return Ok(None);
    };
    match AsnDb::open(&dir) {
        Ok(db) => {
            tracing::info!("IP database: {}", dir.display());
            Ok(Some((dir, db)))
        }
        Err(e) => {
            tracing::warn!("{e:#}: going on without an IP database");
            Ok(None)
        }
    }
}

impl AsnDb {
    /// A database file, or a directory whose `.mmdb` and `.csv` files make one.
    pub fn open(path: &Path) -> anyhow::Result<AsnDb> {
        let files = match path.is_dir() {
            true => files_in(path)?,
            false => vec![path.to_path_buf()],
        };
        let sources = files
            .iter()
            .map(|file| Source::open(file))
            .collect::<anyhow::Result<_>>()?;
        Ok(AsnDb { sources })
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<AsnInfo> {
        let ip = ip.to_canonical();
        let mut found = Found::default();
        for source in &self.sources {
            let more = source.lookup(ip);
            found.asn = found.asn.or(more.asn);
            found.country = found.country.or(more.country);
        }
        Some(AsnInfo {
            asn: found.asn?,
            country: found
                .country
                .map(|c| String::from_utf8_lossy(&c).into_owned()),
        })
    }
}

/// Whether `file` is a MaxMind database: every one ends with a metadata section of at
/// most 128 KiB, after this marker. Leaves `file` at its start.
fn is_mmdb(file: &mut File) -> std::io::Result<bool> {
    const MMDB_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
    const METADATA_MAX: u64 = 128 * 1024;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(METADATA_MAX)))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(tail.windows(MMDB_MARKER.len()).any(|w| w == MMDB_MARKER))
}

/// The database files in `dir`, by name. The ip-location-db packages also hold each
/// table with addresses as numbers (`*-num.csv`): the same ranges again, left out.
fn files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read IP database directory {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read IP database directory {}", dir.display()))?
            .path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        if (name.ends_with(".mmdb") || name.ends_with(".csv")) && !name.ends_with("-num.csv") {
            files.push(path);
        }
    }
    if files.is_empty() {
        bail!(
            "{}: no IP database in it (.mmdb or .csv files)",
            dir.display()
        );
    }
    files.sort();
    Ok(files)
}

impl Source {
    fn open(path: &Path) -> anyhow::Result<Source> {
        let cannot = || format!("cannot read ASN database {}", path.display());
        let mut file = File::open(path).with_context(cannot)?;
        if is_mmdb(&mut file).with_context(cannot)? {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).with_context(cannot)?;
            let reader = maxminddb::Reader::from_source(bytes)
                .with_context(|| format!("{}: not a readable MaxMind database", path.display()))?;
            return Ok(Source::Mmdb(reader));
        }
        // Read as it goes: a full table's 24 MB of text never sits in memory beside its
        // ranges.
        Ranges::parse_csv(BufReader::new(file), path).map(Source::Ranges)
    }

    fn lookup(&self, ip: IpAddr) -> Found {
        match self {
            Source::Mmdb(reader) => {
                let record: Option<MmdbRecord> = reader
                    .lookup(ip)
                    .ok()
                    .and_then(|r| r.decode().ok())
                    .flatten();
                let Some(record) = record else {
                    return Found::default();
                };
                let code = record
                    .country
                    .and_then(|c| c.iso_code)
                    .or(record.country_code);
                Found {
                    asn: record.autonomous_system_number,
                    country: code.as_deref().and_then(country),
                }
            }
            Source::Ranges(ranges) => match ip {
                IpAddr::V4(v4) => find(&ranges.v4, u32::from(v4)),
                IpAddr::V6(v6) => find(&ranges.v6, u128::from(v6)),
            },
        }
    }
}

impl Ranges {
    fn parse_csv(input: impl Read, path: &Path) -> anyhow::Result<Ranges> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input);
        let mut ranges = Ranges::default();
        for (index, record) in reader.records().enumerate() {
            let line = index + 1;
            let record = record.with_context(|| format!("{}:{line}: bad CSV", path.display()))?;
            let field = |i: usize| record.get(i).unwrap_or("").trim();
            let (Ok(start), Ok(end)) = (field(0).parse::<IpAddr>(), field(1).parse::<IpAddr>())
            else {
                if line == 1 {
                    continue; // a header row
                }
                bail!(
                    "{}:{line}: expected start_ip,end_ip,asn[,org[,country]], got {:?}",
                    path.display(),
                    record.iter().collect::<Vec<_>>()
                );
            };
            let asn = field(2)
                .trim_start_matches("AS")
                .parse::<u32>()
                .with_context(|| {
                    format!(
                        "{}:{line}: {:?} is not an AS number",
                        path.display(),
                        field(2)
                    )
                })?;
            let country = country(field(4));
            match (start.to_canonical(), end.to_canonical()) {
                (IpAddr::V4(start), IpAddr::V4(end)) => ranges.v4.push(Range {
                    start: start.into(),
                    end: end.into(),
                    asn,
                    country,
                }),
                (IpAddr::V6(start), IpAddr::V6(end)) => ranges.v6.push(Range {
                    start: start.into(),
                    end: end.into(),
                    asn,
                    country,
                }),
                _ => bail!(
                    "{}:{line}: a range from {start} to {end} mixes IPv4 and IPv6",
                    path.display()
                ),
            }
        }
        if ranges.v4.is_empty() && ranges.v6.is_empty() {
            bail!("{}: no address ranges in the ASN database", path.display());
        }
        settle(&mut ranges.v4);
        settle(&mut ranges.v6);
        Ok(ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_ranges_are_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asn.csv");
        std::fs::write(
            &path,
            "ip_range_start,ip_range_end,autonomous_system_number,autonomous_system_organization\n\
             157.240.0.0,157.240.255.255,32934,Facebook\n\
             149.154.160.0,149.154.175.255,62041,Telegram Messenger Inc,GB\n\
             2a03:2880::,2a03:2880:ffff:ffff:ffff:ffff:ffff:ffff,32934,Facebook\n",
        )
        .unwrap();
        let db = AsnDb::open(&path).unwrap();
        assert_eq!(
            db.lookup("157.240.1.35".parse().unwrap()).unwrap().asn,
            32934
        );
        let tg = db.lookup("149.154.167.51".parse().unwrap()).unwrap();
        assert_eq!((tg.asn, tg.country.as_deref()), (62041, Some("GB")));
        assert_eq!(
            db.lookup("2a03:2880:f12f::1".parse().unwrap()).unwrap().asn,
            32934
        );
        assert_eq!(db.lookup("8.8.8.8".parse().unwrap()), None);
        assert_eq!(db.lookup("149.154.176.1".parse().unwrap()), None);
    }

    #[test]
    fn a_directory_is_one_database_each_address_taking_the_first_file_that_knows() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, rows: &str| std::fs::write(dir.path().join(name), rows).unwrap();
        write("a-asn.csv", "10.0.0.0,10.0.0.255,64500,A\n");
        write(
            "b-country.csv",
            "10.0.0.0,10.0.255.255,64999,B,ir\n10.1.0.0,10.1.0.255,64501,B,XYZ\n",
        );
        write("a-asn-num.csv", "167772160,167772415,64777,Copy\n");
        write("notes.txt", "not a table");
        let db = AsnDb::open(dir.path()).unwrap();
        let found = |ip: &str| db.lookup(ip.parse().unwrap());
        let info = |asn, country: Option<&str>| {
            Some(AsnInfo {
                asn,
                country: country.map(str::to_string),
            })
        };
        assert_eq!(found("10.0.0.7"), info(64500, Some("IR")));
        assert_eq!(found("::ffff:10.0.0.7"), info(64500, Some("IR")));
        assert_eq!(found("10.0.1.7"), info(64999, Some("IR")));
        assert_eq!(found("10.1.0.1"), info(64501, None), "XYZ is no country");
        assert_eq!(found("10.2.0.1"), None);

        let empty = tempfile::tempdir().unwrap();
        let err = AsnDb::open(empty.path()).err().unwrap().to_string();
        assert!(err.contains("no IP database in it"), "{err}");
    }

    #[test]
    fn a_range_mixing_families_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asn.csv");
        std::fs::write(&path, "1.0.0.0,1.0.0.255,13335\n2.0.0.0,2001::1,5\n").unwrap();
        let err = AsnDb::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("asn.csv:2: a range from 2.0.0.0 to 2001::1 mixes"),
            "{err}"
        );
    }

    #[test]
    fn bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asn.csv");
        std::fs::write(&path, "1.0.0.0,1.0.0.255,13335\n2.0.0.0,x,5\n").unwrap();
        let err = AsnDb::open(&path).err().unwrap().to_string();
        assert!(err.contains("asn.csv:2:"), "{err}");
    }
}
