//! The shim under containerd's CRI plugin, driven as a kubelet drives it: pods of namespace
//! `shop` whose RuntimeClass selects the `execguard` runtime handler (enforcing the default
//! policy, or annotated `execguard.dev/mode: monitor`), and one with the `runc` handler
//! that execguard must leave alone. Each pod runs one container, `app`, of the test image
//! (tests/e2e/env.sh), and the checks exec into it with ExecSync, like `kubectl exec`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::alerts::{field, AlertFile};
use crate::bundle::seccomp_listener;
use crate::cri::{Cri, CriError, Pod, PodSpec};
use crate::report::Report;

/// Where the test finds what it needs.
pub struct Settings {
    /// The CRI endpoint: containerd's grpc socket.
    pub socket: PathBuf,
    /// The shim's `[alerts] file`.
    pub alerts: PathBuf,
    /// containerd's `state` directory, which holds the tasks' bundles.
    pub containerd_state: PathBuf,
    /// The test image, in containerd's k8s.io namespace.
    pub image: String,
    /// The policy file of the shim's configuration, which the reload checks rewrite.
    pub policy: PathBuf,
    /// containerd's log, where the shims' logs go.
    pub containerd_log: PathBuf,
}

/// containerd's namespace for everything the CRI plugin makes.
const CRI_NAMESPACE: &str = "k8s.io";
const NAMESPACE: &str = "shop";
const CONTAINER: &str = "app";
/// The container's PID 1: runs until StopPodSandbox sends TERM (a PID 1 gets no default
/// signal handling, hence the trap).
const LONG_RUNNING: &[&str] = &["sh", "-c", r#"trap "exit 0" TERM; while true; do sleep 1; done"#];
/// A destination that is not the container itself (192.0.2.1 is TEST-NET-1, RFC 5737,
/// never a real host): nc that runs fails to connect within its one second and exits 1.
const NC: &[&str] = &["nc", "-w1", "192.0.2.1", "9"];
/// The default policy's rule for nc (config/policy.toml).
const NC_RULE: &str = "falco.launch_suspicious_network_tool";
/// How long alert records may take to reach the file.
const ALERT_WAIT: Duration = Duration::from_secs(3);

/// Runs every check into REPORT; the pods it made are gone afterwards, whatever failed.
pub async fn run(settings: &Settings, report: &mut Report) {
    let mut cri = match Cri::connect(&settings.socket).await {
        Ok((cri, version)) => {
            println!("== CRI at {}: {version}", settings.socket.display());
            cri
        }
        Err(error) => return report.fail("connect to the CRI socket", error),
    };
    let ready_check = "CRI's Status says RuntimeReady (a kubelet runs no pod before)";
    match cri.runtime_ready().await {
        Ok((ready, condition)) => report.check(ready_check, ready, condition),
        Err(error) => return report.fail(ready_check, error),
    }
    let image_check = format!("the test image {} is in containerd's k8s.io namespace", settings.image);
    match cri.has_image(&settings.image).await {
        Ok(true) => report.check(&image_check, true, ""),
        Ok(false) => return report.fail(&image_check, "ImageStatus does not know it: import it (e2e_build_image)"),
        Err(error) => return report.fail(&image_check, error),
    }
    let alerts = AlertFile::new(&settings.alerts);
    let mut test = Test { cri: &mut cri, settings, alerts: &alerts, report: &mut *report };

    test.report.section("pod shop/web, runtime handler execguard: the default policy enforces");
    let outcome = test.enforced().await;
    test.interrupted("pod shop/web", outcome);
    test.report.section("pod shop/cart, runtime handler execguard, annotated execguard.dev/mode: monitor");
    let outcome = test.monitored().await;
    test.interrupted("pod shop/cart", outcome);
    test.report.section("pod shop/batch, runtime handler runc: not execguard's");
    let outcome = test.unsupervised().await;
    test.interrupted("pod shop/batch", outcome);
    test.report.section("pod shop/live, runtime handler execguard: the node's policy file changes under it");
    let outcome = test.reloaded().await;
    test.interrupted("pod shop/live", outcome);

    report.section("StopPodSandbox and RemovePodSandbox");
    let errors = cri.remove_pods().await;
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    report.check("every pod is stopped and removed", errors.is_empty(), errors.join("; "));
    match cri.pod_ids().await {
        Ok(left) => report.check("ListPodSandbox lists no pod any more", left.is_empty(), left.join(", ")),
        Err(error) => report.fail("ListPodSandbox lists no pod any more", error),
    }
}

struct Test<'a> {
    cri: &'a mut Cri,
    settings: &'a Settings,
    alerts: &'a AlertFile,
    report: &'a mut Report,
}

impl Test<'_> {
    /// Counts a scenario that a CRI call cut short as a failed check.
    fn interrupted(&mut self, scenario: &str, outcome: Result<(), CriError>) {
        if let Err(error) = outcome {
            self.report.fail(&format!("{scenario} runs to its end"), error);
        }
    }

    /// A pod and its `app` container, started.
    async fn pod_with_app(
        &mut self,
        name: &str,
        handler: &str,
        annotations: &[(&str, &str)],
    ) -> Result<(Pod, String), CriError> {
        let spec = PodSpec { namespace: NAMESPACE, name, runtime_handler: handler, annotations };
        let pod = self.cri.run_pod(&spec).await?;
        let app = self.cri.start_container(&pod, CONTAINER, &self.settings.image, LONG_RUNNING).await?;
        Ok((pod, app))
    }

    async fn enforced(&mut self) -> Result<(), CriError> {
        let (pod, app) = self.pod_with_app("web", "execguard", &[]).await?;

        let ls = self.cri.exec_sync(&app, &["ls", "/"]).await?;
        self.report.check("ExecSync of ls works", ls.exit_code == 0 && ls.stdout.contains("bin"), &ls);

        // runc starts an exec's process with an execve of its own, the one the shim
        // refuses: no process runs, and runc's error is the exec's stderr. Its exit code
        // is 1, like nc's own for a refused connection, so the message is what tells.
        let direct = self.cri.exec_sync(&app, NC).await?;
        let refused = direct.exit_code != 0 && direct.stderr.contains("exec /usr/bin/nc: operation not permitted");
        self.report.check("ExecSync of nc is refused: operation not permitted", refused, &direct);

        let shell = self.cri.exec_sync(&app, &["sh", "-c", &NC.join(" ")]).await?;
        let refused = shell.exit_code == 126 && shell.stderr.contains("nc: Operation not permitted");
        self.report.check("nc run by a shell in ExecSync fails with EPERM (exit 126)", refused, &shell);

        let records = self.records(&app, 2).await;
        let blocks = records.iter().filter(|r| field(r, "/decision") == Some("block")).count();
        self.report.check("one block record per attempt", records.len() == 2 && blocks == 2, summary(&records));
        let first = records.first().cloned().unwrap_or(Value::Null);
        self.report.check(
            "the record names nc and the rule",
            field(&first, "/process/executable") == Some("/usr/bin/nc.openbsd")
                && first.pointer("/process/args") == Some(&serde_json::json!(NC))
                && field(&first, "/rule/id") == Some(NC_RULE),
            summary(&records),
        );
        self.check_pod_fields(&first, &pod, &app);

        let listener = seccomp_listener(&self.settings.containerd_state, CRI_NAMESPACE, &app);
        self.report.check(
            "the app container's bundle has a seccomp listener",
            matches!(listener, Ok(Some(_))),
            format!("{listener:?}"),
        );
        let listener = seccomp_listener(&self.settings.containerd_state, CRI_NAMESPACE, &pod.id);
        self.report.check(
            "the sandbox's pause container is not filtered (no listener in its bundle)",
            matches!(listener, Ok(None)),
            format!("{listener:?}"),
        );
        Ok(())
    }

    async fn monitored(&mut self) -> Result<(), CriError> {
        let (pod, app) = self.pod_with_app("cart", "execguard", &[("execguard.dev/mode", "monitor")]).await?;

        let nc = self.cri.exec_sync(&app, NC).await?;
        self.report.check("ExecSync of nc runs (exit 1: connection refused)", nc.exit_code == 1, &nc);

        let records = self.records(&app, 1).await;
        let record = records.first().cloned().unwrap_or(Value::Null);
        self.report.check(
            "and is alerted as what enforce mode would block",
            records.len() == 1
                && field(&record, "/decision") == Some("alert")
                && field(&record, "/process/executable") == Some("/usr/bin/nc.openbsd")
                && field(&record, "/rule/id") == Some(NC_RULE)
                && field(&record, "/reason").is_some_and(|reason| reason.contains("enforce mode would block")),
            summary(&records),
        );
        self.check_pod_fields(&record, &pod, &app);
        Ok(())
    }

    async fn unsupervised(&mut self) -> Result<(), CriError> {
        let (_pod, app) = self.pod_with_app("batch", "runc", &[]).await?;

        let nc = self.cri.exec_sync(&app, NC).await?;
        self.report.check("ExecSync of nc runs (exit 1: connection refused)", nc.exit_code == 1, &nc);
        let listener = seccomp_listener(&self.settings.containerd_state, CRI_NAMESPACE, &app);
        self.report.check(
            "the app container has no seccomp listener",
            matches!(listener, Ok(None)),
            format!("{listener:?}"),
        );
        // Records of the other pods are in the file by now (their checks waited for them),
        // so a record about this container would be too.
        let records = self.alerts.records_for(&app);
        self.report.check(
            "no alert record names its container",
            matches!(&records, Ok(records) if records.is_empty()),
            match &records {
                Ok(records) => summary(records),
                Err(error) => error.to_string(),
            },
        );
        Ok(())
    }

    /// Hot reload: a changed policy file applies to the running pod within 5 seconds, and a
    /// broken one is rejected in the log while the last good policy stays in force.
    async fn reloaded(&mut self) -> Result<(), CriError> {
        let (_pod, app) = self.pod_with_app("live", "execguard", &[]).await?;
        let nc_in_shell = ["sh", "-c", &NC.join(" ")];
        let before = self.cri.exec_sync(&app, &nc_in_shell).await?;
        self.report.check("the node's policy blocks nc (exit 126)", before.exit_code == 126, &before);

        let policy = std::fs::read_to_string(&self.settings.policy).unwrap_or_default();
        let monitor = policy.replacen("\nmode = \"enforce\"\n", "\nmode = \"monitor\"\n", 1);
        let written = replace_file(&self.settings.policy, &monitor);
        self.report.check(
            "the policy file is switched to monitor mode",
            written.is_ok() && monitor != policy,
            format!("{written:?}"),
        );
        let start = std::time::Instant::now();
        let mut after = before;
        while start.elapsed() < Duration::from_secs(8) {
            after = self.cri.exec_sync(&app, &nc_in_shell).await?;
            if after.exit_code == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let took = start.elapsed();
        self.report.check(
            &format!("the running pod follows the new policy within 5 s (it took {} ms)", took.as_millis()),
            after.exit_code == 1 && took <= Duration::from_secs(5),
            &after,
        );

        let written = replace_file(&self.settings.policy, "mode = \"enforce\"\n[[rules]]\nid = 1\n");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let log = std::fs::read_to_string(&self.settings.containerd_log).unwrap_or_default();
        let rejected = log
            .lines()
            .any(|l| l.contains("policy not reloaded") && l.contains(&*self.settings.policy.to_string_lossy()));
        self.report.check(
            "a broken policy file is rejected in the log, naming the file",
            written.is_ok() && rejected,
            "",
        );
        let still = self.cri.exec_sync(&app, &nc_in_shell).await?;
        self.report.check("and the last good policy stays in force (nc still runs)", still.exit_code == 1, &still);
        Ok(())
    }

    /// The records about CONTAINER, once COUNT are there; none when the file cannot be read
    /// (the checks on them then fail and show why).
    async fn records(&mut self, container: &str, count: usize) -> Vec<Value> {
        match self.alerts.wait_for(container, count, ALERT_WAIT).await {
            Ok(records) => records,
            Err(error) => {
                self.report.fail("the alert file can be read", error);
                Vec::new()
            }
        }
    }

    /// The record carries what a responder needs to find the pod: what CRI put into the
    /// OCI spec's `io.kubernetes.cri.*` annotations.
    fn check_pod_fields(&mut self, record: &Value, pod: &Pod, app: &str) {
        let expected = [
            ("orchestrator.namespace", "/orchestrator/namespace", pod.namespace()),
            ("the pod's name", "/orchestrator/resource/name", pod.name()),
            ("the container's name", "/container/name", CONTAINER),
            ("the container's id", "/container/id", app),
            ("the image", "/container/image/name", &self.settings.image),
        ];
        for (what, pointer, wanted) in expected {
            let got = field(record, pointer);
            self.report.check(
                &format!("the record carries {what} ({wanted})"),
                got == Some(wanted),
                format!("{pointer} = {got:?}"),
            );
        }
    }
}

/// Replaces a file as a ConfigMap update does: a new file renamed over the old one.
fn replace_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let staged = path.with_extension("toml.new");
    std::fs::write(&staged, text)?;
    std::fs::rename(&staged, path)
}

/// The records, shortened to what the checks look at.
fn summary(records: &[Value]) -> String {
    let lines: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} rule {}",
                field(r, "/decision").unwrap_or("?"),
                field(r, "/process/executable").unwrap_or("?"),
                r.pointer("/process/args").map(Value::to_string).unwrap_or_default(),
                field(r, "/rule/id").unwrap_or("?"),
            )
        })
        .collect();
    format!("{} record(s): [{}]", records.len(), lines.join("; "))
}
