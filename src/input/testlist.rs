//! Citizen Lab test lists (`citizenlab/test-lists/lists/{cc}.csv`, `global.csv`) as
//! targets, so that volunteers can measure the URLs the whole field measures.
//!
//! Each row's URL becomes a URL target whose service is the row's category code
//! (`NEWS`, `POLR`, ...), so verdict rows and summaries group by category. Like a
//! targets file, a broken list stops the run before anything is measured, with the
//! file, the line and what is wrong.

use std::collections::HashSet;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::input::bogon::AddressPolicy;
use crate::input::targets::{self, Service};

/// A mistake in a test list, located for a person to fix.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct TestListError {
    pub file: PathBuf,
    pub line: u64,
    pub message: String,
}

/// Reads the rows of `path` whose category is among `categories` (all rows when it is
/// empty; codes compare without regard to case), one service per row, in file order.
/// A URL that repeats an earlier row's is left out: it is measured once, under the
/// first row's category.
pub fn load(
    path: &Path,
    categories: &[String],
    policy: &AddressPolicy,
) -> anyhow::Result<Vec<Service>> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read test list {}: {e}", path.display()))?;
    parse(file, path, categories, policy)
}

/// As [`load`], from any reader; `path` only names the list in errors.
pub fn parse(
    input: impl Read,
    path: &Path,
    categories: &[String],
    policy: &AddressPolicy,
) -> anyhow::Result<Vec<Service>> {
    let error = |line: u64, message: String| TestListError {
        file: path.to_path_buf(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| error(1, e.to_string()))?
        .clone();
    // The columns we read, found by name; the others (description, date, source, notes)
    // are the list maintainers' and are left alone.
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            error(
                1,
                format!(
                    "no {name} column: a test list starts with the header url,category_code,category_description,date_added,source,notes"
                ),
            )
        })
    };
    let (url_column, category_column) = (column("url")?, column("category_code")?);
    let mut seen = HashSet::new();
    let mut services = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            error(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        // A short row lacks the trailing columns; what it lacks is empty.
        let (url, category_code) = (
            record.get(url_column).unwrap_or_default(),
            record.get(category_column).unwrap_or_default(),
        );
        // Every row is checked, chosen or not: a broken list never starts a run.
        if url.is_empty() {
            return Err(error(line, "url: the row has no URL".into()).into());
        }
        let url = targets::parse_url(url).map_err(|m| error(line, format!("url: {m}")))?;
        let category = category_code.to_ascii_uppercase();
        let valid_category = !category.is_empty()
            && category
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_category {
            let message =
                format!("category_code: {category_code:?} is not a category code (e.g. NEWS)");
            return Err(error(line, message).into());
        }
        let chosen =
            categories.is_empty() || categories.iter().any(|c| c.eq_ignore_ascii_case(&category));
        if !chosen || !seen.insert(url.to_string()) {
            continue;
        }
        let literal: Option<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(ip.into()),
            Some(url::Host::Ipv6(ip)) => Some(ip.into()),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| policy.is_bogon(*ip)) {
            let message = format!(
                "url: {url} is a private or reserved address ({ip}); add its range to treat_as_public (or --treat-as-public) to measure it"
            );
            return Err(error(line, message).into());
        }
        services.push(Service {
            name: category,
            domains: Vec::new(),
            urls: vec![url],
            endpoints: Vec::new(),
            asns: Vec::new(),
            tls_ports: None,
            tcp_ports: None,
            quic_ports: None,
        });
    }
    Ok(services)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "url,category_code,category_description,date_added,source,notes\n";

    /// Loads `text` as a list; errors name the file without its temporary directory.
    fn load_text(text: &str, categories: &[&str]) -> Result<Vec<Service>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ir.csv");
        std::fs::write(&path, text).unwrap();
        let categories: Vec<String> = categories.iter().map(|c| c.to_string()).collect();
        load(&path, &categories, &AddressPolicy::new(Vec::new())).map_err(|e| {
            e.to_string()
                .replace(&format!("{}/", dir.path().display()), "")
        })
    }

    fn urls(services: &[Service]) -> Vec<(String, String)> {
        services
            .iter()
            .map(|s| (s.name.clone(), s.urls[0].to_string()))
            .collect()
    }

    #[test]
    fn rows_become_url_services_filtered_by_category_without_repeats() {
        let text = format!(
            "{HEADER}https://www.bbc.com/persian/,NEWS,News Media,2014-04-15,citizenlab,\"BBC, Persian\"\n\
             http://www.hrw.org/,humr,Human Rights Issues,2014-04-15,citizenlab,\n\
             https://WWW.BBC.COM/persian/,POLR,Political Criticism,2017-01-01,,\n\
             https://twitter.com/,GRP,Social Networking,2014-04-15,citizenlab,\n"
        );
        let all = load_text(&text, &[]).unwrap();
        assert_eq!(
            urls(&all),
            [
                ("NEWS".into(), "https://www.bbc.com/persian/".into()),
                ("HUMR".into(), "http://www.hrw.org/".into()),
                ("GRP".into(), "https://twitter.com/".into()),
            ]
        );
        let some = load_text(&text, &["news", "GRP"]).unwrap();
        assert_eq!(some.len(), 2);
        assert!(load_text(&text, &["LGBT"]).unwrap().is_empty());
        // Spreadsheets save CSV with a byte-order mark and drop empty trailing columns.
        let saved = "\u{feff}url,category_code,notes\nhttps://a.org/,NEWS\n";
        assert_eq!(load_text(saved, &[]).unwrap().len(), 1);
    }

    #[test]
    fn bad_rows_name_file_line_and_problem() {
        let e = load_text(
            &format!("{HEADER}https://a.org/,NEWS\nftp://b.org/,NEWS\n"),
            &[],
        )
        .unwrap_err();
        assert!(e.starts_with("ir.csv:3: url: "), "{e}");
        assert!(e.contains("only http:// and https://"), "{e}");
        let e = load_text(&format!("{HEADER}not a url,NEWS\n"), &[]).unwrap_err();
        assert!(
            e.starts_with("ir.csv:2: url: ") && e.contains("is not a URL"),
            "{e}"
        );
        let e = load_text(&format!("{HEADER},NEWS\n"), &[]).unwrap_err();
        assert!(e.starts_with("ir.csv:2: url: the row has no URL"), "{e}");
        let e = load_text(&format!("{HEADER}https://a.org/,\n"), &[]).unwrap_err();
        assert!(e.starts_with("ir.csv:2: category_code: "), "{e}");
        let e = load_text("address,category_code\nhttps://a.org/,NEWS\n", &[]).unwrap_err();
        assert!(e.starts_with("ir.csv:1: no url column"), "{e}");
    }

    #[test]
    fn bogon_hosts_are_refused_unless_public() {
        let text = format!("{HEADER}https://a.org/,NEWS\nhttp://10.10.34.34/,NEWS\n");
        let e = load_text(&text, &[]).unwrap_err();
        assert!(
            e.starts_with("ir.csv:3: url: ") && e.contains("private or reserved"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ir.csv");
        std::fs::write(&path, text).unwrap();
        let lab = AddressPolicy::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(load(&path, &[], &lab).unwrap().len(), 2);
    }
}
