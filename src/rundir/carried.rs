//! contexts.jsonl, in a run directory made by `import --ooni`: for each measurement
//! that censorprobe's own export carried whole, what its run knew besides the facts
//! (the canary's findings on the probe's network, the lab networks, the deadline), the
//! other targets' triggers on its addresses, and why the control had nothing for it. A
//! run judges a target with them; an import holds each measurement under its own
//! origin, apart from the run's other targets and its canary, so `analyse` reads them
//! here to judge as the import did.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::CONTEXTS_JSONL;
use crate::analyse::Context;
use crate::facts::Trigger;

/// One line: a measurement (its verdict row's `run_id` and `target`) and what its run
/// carried.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    run_id: Cow<'a, str>,
    target: Cow<'a, str>,
    context: Cow<'a, Context>,
    #[serde(default, skip_serializing_if = "<[Trigger]>::is_empty")]
    triggers: Cow<'a, [Trigger]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    control_unavailable: Option<Cow<'a, str>>,
}

/// What a measurement's run carried.
#[derive(Debug, Clone)]
pub struct Carried {
    pub context: Arc<Context>,
    pub triggers: Vec<Trigger>,
    /// Why its run had no control facts for it, where it had a control: judged as a
    /// control that gave nothing. None, without control facts: a run without a control.
    pub control_unavailable: Option<String>,
}

/// Writes the lines as an import judges them; the file is made with the first. Each
/// line is flushed as it is written, before the measurement's rows: a killed import
/// never leaves rows whose context is lost.
pub struct CarriedWriter {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl CarriedWriter {
    pub fn new(dir: &Path) -> CarriedWriter {
        CarriedWriter {
            path: dir.join(CONTEXTS_JSONL),
            file: None,
        }
    }

    pub fn write(&mut self, run_id: &str, target: &str, carried: &Carried) -> anyhow::Result<()> {
        let cannot = || format!("cannot write {}", self.path.display());
        if self.file.is_none() {
            self.file = Some(BufWriter::new(
                File::create(&self.path).with_context(cannot)?,
            ));
        }
        let line = Line {
            run_id: run_id.into(),
            target: target.into(),
            context: Cow::Borrowed(&carried.context),
            triggers: Cow::Borrowed(&carried.triggers),
            control_unavailable: carried.control_unavailable.as_deref().map(Cow::Borrowed),
        };
        let file = self.file.as_mut().expect("opened above");
        serde_json::to_writer(&mut *file, &line).with_context(cannot)?;
        file.write_all(b"\n").with_context(cannot)?;
        file.flush().with_context(cannot)
    }
}

/// The lines of `dir`'s contexts.jsonl by origin and target, if it has one; the first
/// of a measurement's, where two name it. The measurements of one run share one
/// context, held once. A torn last line (an import killed as it wrote) is left out.
pub fn read(dir: &Path) -> anyhow::Result<HashMap<(String, String), Carried>> {
    let path = dir.join(CONTEXTS_JSONL);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut out = HashMap::new();
    let mut shared: HashMap<String, Arc<Context>> = HashMap::new();
    super::read_jsonl(&path, file, |line: Line| {
        let key = serde_json::to_string(&line.context)?;
        let context = shared
            .entry(key)
            .or_insert_with(|| Arc::new(line.context.into_owned()))
            .clone();
        out.entry((line.run_id.into_owned(), line.target.into_owned()))
            .or_insert(Carried {
                context,
                triggers: line.triggers.into_owned(),
                control_unavailable: line.control_unavailable.map(Cow::into_owned),
            });
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::analyse::fixtures::{FB_443, canary_context, failed_lookup, issued_by, mitm, tcp};
    use crate::facts::Sent;
    use crate::facts::failure::Failure;

    /// What a run knew comes back as written: the canary's findings (a resolver that
    /// failed it, an interceptor, a connect refused), the deadline, the triggers, why the
    /// control had nothing; the measurements of one run share one context.
    #[test]
    fn a_carried_context_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut context = canary_context(
            vec![failed_lookup(Failure::DnsServfail)],
            vec![
                issued_by(mitm(FB_443), "CN=Corporate Inspection CA"),
                tcp("[2a03:2880::35]:443", Some(Failure::ConnectionRefused)),
            ],
        );
        context.deadline = Some(std::time::Duration::from_millis(2500));
        context.quic = Some(false);
        let trigger = Trigger {
            address: FB_443.parse().unwrap(),
            sent: Sent::Name("facebook.com".into()),
            target: "https://facebook.com/".into(),
            at: Utc::now(),
            failure: Failure::ConnectionReset,
        };
        let context = Arc::new(context);
        let mut writer = CarriedWriter::new(dir.path());
        let carried = |triggers: Vec<Trigger>, control_unavailable: Option<&str>| Carried {
            context: context.clone(),
            triggers,
            control_unavailable: control_unavailable.map(str::to_string),
        };
        writer
            .write("a", "t", &carried(vec![trigger.clone()], None))
            .unwrap();
        writer
            .write("b", "t", &carried(vec![], Some("refused")))
            .unwrap();
        // A second line for a measurement does not replace the first.
        writer
            .write("a", "t", &carried(vec![], Some("later")))
            .unwrap();
        drop(writer);

        let read = read(dir.path()).unwrap();
        let key = |run_id: &str| (run_id.to_string(), "t".to_string());
        let (a, b) = (&read[&key("a")], &read[&key("b")]);
        let written = serde_json::to_value(&context).unwrap();
        assert_eq!(serde_json::to_value(&*a.context).unwrap(), written);
        assert!(written["resolvers"][0]["failed"].is_object(), "{written}");
        assert!(written["canary_intercepted"].is_object(), "{written}");
        assert_eq!(written["canary_failed"].as_array().map(Vec::len), Some(1));
        assert_eq!(written["deadline"], 2.5);
        assert_eq!(a.triggers, [trigger]);
        assert_eq!(a.control_unavailable, None);
        assert!(b.triggers.is_empty());
        assert_eq!(b.control_unavailable.as_deref(), Some("refused"));
        assert!(
            Arc::ptr_eq(&a.context, &b.context),
            "one context, held once"
        );
    }

    #[test]
    fn a_run_without_the_file_carries_nothing_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        // A torn last line is a killed import's: left out. One before it is not.
        std::fs::write(dir.path().join(CONTEXTS_JSONL), "{\"run_id\":\"a\",\"tar").unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        std::fs::write(
            dir.path().join(CONTEXTS_JSONL),
            "{\"run_id\":\"a\"}\nnot json\n",
        )
        .unwrap();
        let e = read(dir.path())
            .expect_err("a bad file refused")
            .to_string();
        assert!(e.contains("contexts.jsonl:1"), "{e}");
    }
}
