//! Where each secret of the pipeline is (sources' DSNs, alert channels' URLs): a variable set
//! here, or a Secret Manager secret with an enabled version.

use std::collections::BTreeMap;

use sluice::config::{Pipeline, Target};
use sluice::secret::DsnRef;

use super::cloud_run::Deployed;
use super::report::{apply_hint, Mark, Report};

/// Where each secret of the pipeline is (sources' DSNs, alert channels' URLs), checked;
/// returns, per source, where its DSN can be read from here (`None`: nowhere).
pub(super) async fn secrets(
    r: &mut Report,
    p: &Pipeline,
    t: &Target,
    deployed: &Deployed,
    usable: bool,
) -> BTreeMap<String, Option<DsnRef>> {
    let mut readable = BTreeMap::new();
    for (name, source) in &p.sources {
        let what = format!("source {name}'s DSN");
        let dsn = secret_line(r, t, deployed, usable, &what, t.dsn_ref(name, source)).await;
        readable.insert(name.clone(), dsn);
    }
    if let Some(a) = &p.alerts {
        for (name, c) in &a.channels {
            let what = format!("alerts channel {name}'s URL");
            secret_line(r, t, deployed, usable, &what, &c.url).await;
        }
    }
    readable
}

/// One line about where `what` comes from: a variable set here, or a secret (named in
/// pipeline.yaml, or the one a Cloud Run job reads the variable from) with an enabled version.
/// Returns where the value can be read from here, if anywhere.
async fn secret_line(
    r: &mut Report,
    t: &Target,
    deployed: &Deployed,
    usable: bool,
    what: &str,
    dsn: &DsnRef,
) -> Option<DsnRef> {
    let (secret, via) = match dsn {
        DsnRef::Secret(s) => (s.clone(), String::new()),
        DsnRef::Env(var) if std::env::var(var).is_ok_and(|v| !v.is_empty()) => {
            r.add(Mark::Ok, what, format!("{var} is set here"));
            return Some(dsn.clone());
        }
        DsnRef::Env(var) => match deployed.secret_env.get(var) {
            Some(s) => (s.clone(), format!(" ({var} of the Cloud Run jobs)")),
            None if t.no_auth => {
                r.add(
                    Mark::Fail,
                    what,
                    format!("{var} is not set — export {var}=… before running the workers"),
                );
                return None;
            }
            None => {
                r.add(
                    Mark::Fail,
                    what,
                    format!(
                        "no Cloud Run job reads {var} from a secret, and it is not set here — add {var} = \"<secret id>\" to dsn_secrets in {}.tfvars, then {}",
                        t.name,
                        apply_hint(&t.name)
                    ),
                );
                return None;
            }
        },
    };
    if !usable {
        r.add(
            Mark::Skip,
            what,
            format!("secret {secret}{via}: no credentials to read it"),
        );
        return None;
    }
    let short = secret.rsplit('/').next().unwrap_or(&secret).to_string();
    match sluice::secret_manager::enabled_versions(&secret, t).await {
        Ok(Some(0)) => {
            r.add(
                Mark::Fail,
                what,
                format!(
                    "secret {secret}{via} has no version yet — printf '%s' '<value>' | gcloud secrets versions add {short} --data-file=-"
                ),
            );
            None
        }
        Ok(Some(n)) => {
            r.add(
                Mark::Ok,
                what,
                format!(
                    "secret {secret}{via} has {n} enabled version{}",
                    if n == 1 { "" } else { "s" }
                ),
            );
            Some(DsnRef::Secret(secret))
        }
        Ok(None) => {
            r.add(
                Mark::Fail,
                what,
                format!(
                    "secret {secret}{via} does not exist — {} creates it (dsn_secrets)",
                    apply_hint(&t.name)
                ),
            );
            None
        }
        Err(e) => {
            r.add(Mark::Skip, what, e.into_message());
            // The workers only need to read it; try that.
            Some(DsnRef::Secret(secret))
        }
    }
}
