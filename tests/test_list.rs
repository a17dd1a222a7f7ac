//! `run --test-list`: a Citizen Lab test list's URLs measured as targets, on loopback,
//! with a targets file that gives only the settings and the canary.

#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use tempfile::TempDir;

use common::probe::{ProbeRun, run_probe};
use common::*;

const CANARY: &str = "canary.test";
const HEADER: &str = "url,category_code,category_description,date_added,source,notes\n";

/// A resolver for the canary and the list's hosts, and a web server for all of them,
/// whose port is also the canary's (TCP-only) port.
struct Lab {
    resolver: SocketAddr,
    web: SocketAddr,
    lists: TempDir,
}

impl Lab {
    async fn new() -> Lab {
        let mut zone: Vec<(&str, DnsBehaviour)> = ["news.test", "news2.test", "polr.test"]
            .into_iter()
            .map(|name| (name, DnsBehaviour::Answer(vec![LOCALHOST])))
            .collect();
        zone.push((CANARY, DnsBehaviour::Answer(vec![LOCALHOST])));
        Lab {
            resolver: DnsServer::spawn(&zone).unwrap(),
            web: HttpServer::spawn(200, &page("list", "<p>News.</p>"))
                .await
                .unwrap(),
            lists: tempfile::tempdir().unwrap(),
        }
    }

    /// A targets file of `[settings]` alone: the test list brings every target.
    fn settings_only(&self) -> String {
        format!(
            "[settings]\ncanary = \"{CANARY}\"\ntls_ports = []\ntcp_ports = [{}]\n",
            self.web.port()
        )
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.web.port())
    }

    /// Writes a test list of `rows` (after the header) and returns its path.
    fn list(&self, name: &str, rows: &str) -> PathBuf {
        let path = self.lists.path().join(name);
        std::fs::write(&path, format!("{HEADER}{rows}")).unwrap();
        path
    }

    async fn run(&self, targets: &str, extra: &[&str]) -> ProbeRun {
        let resolver = format!("udp://{}", self.resolver);
        let mut args = vec!["--resolver", resolver.as_str()];
        args.extend_from_slice(extra);
        run_probe(targets, &args).await
    }
}

/// Asserts that the run stopped as bad input, before creating its results, saying
/// `needles`.
fn assert_refused(run: &ProbeRun, needles: &[&str]) {
    assert_eq!(run.status.code(), Some(2), "bad input exits 2\n{run}");
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr must say {needle:?}\n{run}"
        );
    }
    assert!(!run.out.exists(), "a results dir was created\n{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_are_measured_once_each_under_their_category_and_filtered_by_category() {
    let lab = Lab::new().await;
    let (news, news2, polr) = (
        lab.url("news.test", "/"),
        lab.url("news2.test", "/a"),
        lab.url("polr.test", "/"),
    );
    let list = lab.list(
        "ir.csv",
        &format!(
            "{news},NEWS,News Media,2014-04-15,citizenlab,\"Persian, daily\"\n\
             {polr},POLR,Political Criticism,2014-04-15,citizenlab,\n\
             {news},NEWS,News Media,2020-01-01,citizenlab,listed twice\n\
             {upper},NEWS,News Media,2020-01-01,,same URL in capitals\n\
             {news2},news,News Media,2021-06-01,,\n",
            upper = lab.url("NEWS.test", "/"),
        ),
    );
    let list = list.to_str().unwrap();

    let run = lab
        .run(
            &lab.settings_only(),
            &["--test-list", list, "--category", "news"],
        )
        .await;
    assert!(run.status.success(), "{run}");
    run.assert_verdict(CANARY, "ok", "");
    for url in [&news, &news2] {
        run.assert_verdict(url, "ok", "");
        assert_eq!(run.row(url).service, "NEWS", "service of {url}\n{run}");
    }
    assert_eq!(run.verdicts.len(), 3, "canary and two NEWS URLs\n{run}");

    let run = lab.run(&lab.settings_only(), &["--test-list", list]).await;
    assert!(run.status.success(), "{run}");
    run.assert_verdict(&polr, "ok", "");
    assert_eq!(run.row(&polr).service, "POLR");
    assert_eq!(
        run.verdicts.len(),
        4,
        "every category, each URL once\n{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn test_list_targets_are_added_to_the_targets_files() {
    let lab = Lab::new().await;
    let polr = lab.url("polr.test", "/");
    let list = lab.list(
        "global.csv",
        &format!("{polr},POLR,Political Criticism,,,\n"),
    );
    let targets = format!(
        "{}\n[[service]]\nname = \"news\"\nurls = [\"{}\"]\n",
        lab.settings_only(),
        lab.url("news.test", "/")
    );
    let run = lab
        .run(&targets, &["--test-list", list.to_str().unwrap()])
        .await;
    assert!(run.status.success(), "{run}");
    assert_eq!(run.row(&lab.url("news.test", "/")).service, "news");
    assert_eq!(run.row(&polr).service, "POLR");
    assert_eq!(run.verdicts.len(), 3, "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_row_stops_the_run_naming_the_file_the_line_and_the_problem() {
    let lab = Lab::new().await;
    let good = format!("{},NEWS,,,,\n", lab.url("news.test", "/"));
    let cases = [
        (
            "scheme.csv",
            format!("{good}ftp://news.test/,NEWS,,,,\n"),
            vec![":3: url: ", "only http:// and https://"],
        ),
        (
            "garbage.csv",
            format!("{good}{good}not a url,NEWS,,,,\n"),
            vec![":4: url: ", "is not a URL"],
        ),
        (
            "bogon.csv",
            "http://10.10.34.34/,NEWS,,,,\n".to_string(),
            vec![":2: url: ", "private or reserved address"],
        ),
    ];
    for (name, rows, needles) in cases {
        let list = lab.list(name, &rows);
        let list = list.to_str().unwrap();
        let run = lab.run(&lab.settings_only(), &["--test-list", list]).await;
        let mut needles = needles;
        needles.push(list);
        assert_refused(&run, &needles);
    }

    let headless = lab.lists.path().join("headless.csv");
    std::fs::write(&headless, "link,category_code\nhttp://news.test/,NEWS\n").unwrap();
    let headless = headless.to_str().unwrap();
    let run = lab
        .run(&lab.settings_only(), &["--test-list", headless])
        .await;
    assert_refused(&run, &[headless, ":1: no url column"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_nothing_to_measure_is_an_error_naming_the_targets_file() {
    let lab = Lab::new().await;
    let run = lab.run(&lab.settings_only(), &[]).await;
    let targets = run.targets.display().to_string();
    assert_refused(&run, &[&targets, "nothing to measure"]);

    let list = lab.list(
        "ir.csv",
        &format!("{},NEWS,,,,\n", lab.url("news.test", "/")),
    );
    let list = list.to_str().unwrap();
    let run = lab
        .run(
            &lab.settings_only(),
            &["--test-list", list, "--category", "LGBT"],
        )
        .await;
    let targets = run.targets.display().to_string();
    assert_refused(&run, &[&targets, "nothing to measure", list, "LGBT"]);
}
