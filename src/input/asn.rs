//! `--asn-db`: which autonomous system (and country, where the database knows) an
//! address belongs to. Reads a MaxMind-format database (GeoLite2-ASN, DB-IP, the
//! ip-location-db MMDBs) or a CSV of ranges `start,end,asn[,organisation[,country]]`
//! (the ip-location-db CSV layout), so that a volunteer can use a freely licensed file.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsnInfo {
    pub asn: u32,
    pub country: Option<String>,
}

pub enum AsnDb {
    Mmdb(maxminddb::Reader<Vec<u8>>),
    /// Ranges sorted by start, as (start, end, info), with addresses as u128 so that
    /// IPv4 and IPv6 share one table (IPv4 as mapped addresses).
    Ranges(Vec<(u128, u128, AsnInfo)>),
}

fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[derive(Deserialize)]
struct MmdbRecord {
    autonomous_system_number: Option<u32>,
    country: Option<MmdbCountry>,
}

#[derive(Deserialize)]
struct MmdbCountry {
    iso_code: Option<String>,
}

impl AsnDb {
    pub fn open(path: &Path) -> anyhow::Result<AsnDb> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read ASN database {}", path.display()))?;
        // Every MaxMind DB carries this marker before its metadata section.
        const MMDB_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
        if bytes.windows(MMDB_MARKER.len()).any(|w| w == MMDB_MARKER) {
            let reader = maxminddb::Reader::from_source(bytes)
                .with_context(|| format!("{}: not a readable MaxMind database", path.display()))?;
            return Ok(AsnDb::Mmdb(reader));
        }
        AsnDb::parse_csv(&bytes, path)
    }

    fn parse_csv(bytes: &[u8], path: &Path) -> anyhow::Result<AsnDb> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        let mut ranges = Vec::new();
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
            let country = Some(field(4)).filter(|c| c.len() == 2).map(str::to_string);
            ranges.push((key(start), key(end), AsnInfo { asn, country }));
        }
        if ranges.is_empty() {
            bail!("{}: no address ranges in the ASN database", path.display());
        }
        ranges.sort_by_key(|r| r.0);
        Ok(AsnDb::Ranges(ranges))
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<AsnInfo> {
        match self {
            AsnDb::Mmdb(reader) => {
                let record: MmdbRecord = reader.lookup(ip).ok()?.decode().ok()??;
                Some(AsnInfo {
                    asn: record.autonomous_system_number?,
                    country: record.country.and_then(|c| c.iso_code),
                })
            }
            AsnDb::Ranges(ranges) => {
                let k = key(ip);
                let i = ranges.partition_point(|r| r.0 <= k).checked_sub(1)?;
                let (_, end, info) = &ranges[i];
                (k <= *end).then(|| info.clone())
            }
        }
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
    fn bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asn.csv");
        std::fs::write(&path, "1.0.0.0,1.0.0.255,13335\n2.0.0.0,x,5\n").unwrap();
        let err = AsnDb::open(&path).err().unwrap().to_string();
        assert!(err.contains("asn.csv:2:"), "{err}");
    }
}
