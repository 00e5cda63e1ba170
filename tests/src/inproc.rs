//! Agents called in this process, through the same OCF runtime as their
//! binaries, against a [`FakeIpvs`] table: the agent scenarios that need
//! only the IPVS table (adopt, drift, records, reload, stop) run as fast
//! host tests, needing neither root nor a VM. The lab proves the table
//! answers as the kernel's does (`lab_ipvs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use lvs_daemon::Instance;
use lvs_ipvs::{Connector, FakeIpvs};
use lvs_ocf::{AgentSpec, Context, Outcome, Result};

use crate::agent::Call;

/// An agent's action function: what its binary's `main` runs.
pub type Act = fn(&Context, &Instance, &Connector) -> Result<Outcome>;

/// One director: a fake IPVS table and a run directory of its own.
pub struct Director {
    pub ipvs: FakeIpvs,
    pub run_dir: PathBuf,
}

impl Director {
    pub fn new() -> Director {
        static N: AtomicUsize = AtomicUsize::new(0);
        let run_dir = std::env::temp_dir().join(format!(
            "lvs-inproc-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&run_dir).expect("run dir");
        Director { ipvs: FakeIpvs::new(), run_dir }
    }

    /// `OCF_RESKEY_<k>=<v> agent <action>` as Pacemaker calls it, with
    /// `OCF_CHECK_LEVEL` when `depth` is given.
    pub fn call(&self, spec: &AgentSpec, act: Act, instance: &str, action: &str, params: &[(&str, &str)]) -> Call {
        self.call_at(spec, act, instance, action, params, 0)
    }

    pub fn call_at(
        &self,
        spec: &AgentSpec,
        act: Act,
        instance: &str,
        action: &str,
        params: &[(&str, &str)],
        depth: u32,
    ) -> Call {
        let mut env: Vec<(String, String)> =
            params.iter().map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string())).collect();
        env.push(("OCF_RESOURCE_INSTANCE".into(), instance.into()));
        env.push(("OCF_RESKEY_CRM_meta_timeout".into(), "20000".into()));
        env.push(("HA_LOGFACILITY".into(), "none".into()));
        if depth > 0 {
            env.push(("OCF_CHECK_LEVEL".into(), depth.to_string()));
        }
        let args = vec![spec.binary(), action.to_string()];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let kernel = Connector::Fake(self.ipvs.clone());
        let dir = self.run_dir.clone();
        let code = lvs_ocf::execute(
            spec,
            &args,
            &env,
            |ctx| act(ctx, &Instance::in_dir(spec.name, &ctx.instance, dir), &kernel),
            &mut out,
            &mut err,
        );
        Call {
            code: i32::from(code),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        }
    }
}

impl Default for Director {
    fn default() -> Director {
        Director::new()
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}
