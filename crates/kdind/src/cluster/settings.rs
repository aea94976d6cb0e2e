//! Settings that arrive as text in kubeadm-dind-cluster's environment variables: feature gates
//! (`FEATURE_GATES=A=true,B=false`) and extra flags of the control-plane components
//! (`APISERVER_service_node_port_range=30000-32767`: the part after the prefix names the flag).

use std::collections::BTreeMap;

/// Errors in settings given as text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingsError {
    #[error(
        "{variable}: {entry:?} is not a feature gate setting; write Name=true or Name=false, \
         separated by commas"
    )]
    FeatureGate { variable: String, entry: String },
    #[error("{variable}: names no flag; write {prefix}<flag_name>=<value>")]
    EmptyFlag { variable: String, prefix: String },
}

/// Parses `A=true,B=false` (spaces allowed around each part; empty means none).
pub fn feature_gates(variable: &str, text: &str) -> Result<BTreeMap<String, bool>, SettingsError> {
    let mut gates = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || SettingsError::FeatureGate {
            variable: variable.into(),
            entry: entry.into(),
        };
        let (name, value) = entry.split_once('=').ok_or_else(bad)?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        let value = match value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(bad()),
        };
        gates.insert(name.to_owned(), value);
    }
    Ok(gates)
}

/// Variables that share a prefix with component flags but are kdind's own settings.
const RESERVED: &[&str] = &["APISERVER_PORT"];

/// Extra flags of one component from variables named `<prefix><flag>`: the flag is the rest of
/// the name in lower case with `_` as `-` (`APISERVER_audit_log_path` gives `audit-log-path`).
/// `APISERVER_PORT` is kdind's host port setting, not a flag.
pub fn component_flags<'a>(
    prefix: &str,
    variables: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<BTreeMap<String, String>, SettingsError> {
    let mut flags = BTreeMap::new();
    for (name, value) in variables {
        let Some(flag) = name.strip_prefix(prefix) else {
            continue;
        };
        if RESERVED.contains(&name) {
            continue;
        }
        if flag.is_empty() {
            return Err(SettingsError::EmptyFlag {
                variable: name.into(),
                prefix: prefix.into(),
            });
        }
        flags.insert(
            flag.to_ascii_lowercase().replace('_', "-"),
            value.to_owned(),
        );
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_feature_gates() {
        let gates = feature_gates("FEATURE_GATES", " A=true, B=False ,").unwrap();
        assert_eq!(
            gates,
            BTreeMap::from([("A".into(), true), ("B".into(), false)])
        );
        assert!(feature_gates("FEATURE_GATES", "").unwrap().is_empty());
        for bad in ["A", "A=yes", "=true", "A-b=true", "A=true,B"] {
            let err = feature_gates("FEATURE_GATES", bad).unwrap_err();
            assert!(err.to_string().contains("Name=true"), "{bad}: {err}");
        }
    }

    #[test]
    fn names_flags_after_the_prefix() {
        let vars = [
            ("APISERVER_service_node_port_range", "30000-32767"),
            ("APISERVER_AUDIT_LOG_PATH", "/var/log/audit.log"),
            ("SCHEDULER_v", "2"),
            ("APISERVER_PORT", "8443"),
            ("HOME", "/root"),
        ];
        let flags = component_flags("APISERVER_", vars).unwrap();
        assert_eq!(
            flags,
            BTreeMap::from([
                ("audit-log-path".into(), "/var/log/audit.log".into()),
                ("service-node-port-range".into(), "30000-32767".into()),
            ])
        );
        let err = component_flags("APISERVER_", [("APISERVER_", "x")]).unwrap_err();
        assert!(matches!(err, SettingsError::EmptyFlag { .. }));
    }
}
