//! kdind's default pod network: a Linux bridge in each node, static routes between the nodes,
//! and one masquerade rule for traffic that leaves the pod network.
//!
//! Each node's pods sit on the bridge `kdind0` with addresses from the node's own pod subnet
//! (see [`crate::net::pod_subnet_index`]). A pod on another node is reached through a route
//! to that node's subnet via its management address; the nodes share one container-engine
//! network, so the packet goes there directly with its pod addresses intact.
//!
//! The configuration is written for Debian's packaged CNI plugins, 1.1.1, the oldest kdind
//! expects; they read CNI specification versions up to 1.0.0.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::net::{AddressPlan, Cidr, Family};

/// Directory the container runtime reads CNI configuration from.
pub const CONFIG_DIR: &str = "/etc/cni/net.d";
/// Name of kdind's configuration in [`CONFIG_DIR`]; the runtime takes the first file by name.
pub const CONFLIST_NAME: &str = "10-kdind-bridge.conflist";
/// The bridge pods are attached to in each node.
pub const BRIDGE: &str = "kdind0";
/// Name of the CNI network, which also names the IPAM plugin's state.
pub const NETWORK: &str = "kdind";
/// Where the IPAM plugin records the addresses it gave out. `/run` is emptied when a node
/// restarts, and so it should be: no pod survives a restart, and records kept on the persistent
/// `/var` would hold their addresses until something tore those pods down again.
pub const IPAM_DATA_DIR: &str = "/run/cni-ipam";
/// Comment on kdind's masquerade rule, so that it can be told from others.
pub const MASQUERADE_COMMENT: &str = "kdind: masquerade pod traffic leaving the pod network";

/// The newest CNI specification the oldest expected plugins (1.1.1) read.
const CNI_VERSION: &str = "1.0.0";

/// The conflist of a node whose pods take addresses from `pod_subnets` (one per family).
///
/// The bridge plugin's own `ipMasq` is off: it would masquerade everything leaving the node's
/// subnet, pod-to-pod traffic to other nodes included, which would hide the pods' addresses
/// from each other. [`masquerade_rules`] masquerades only what leaves the whole pod network.
pub fn conflist(pod_subnets: &[Cidr]) -> String {
    let ranges: Vec<Value> = pod_subnets
        .iter()
        .map(|subnet| json!([{ "subnet": subnet.to_string() }]))
        .collect();
    let routes: Vec<Value> = pod_subnets
        .iter()
        .map(|subnet| json!({ "dst": default_route(subnet.family()) }))
        .collect();

    let config = json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                // Lets a pod reach itself through a Service that picks it as the backend.
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": IPAM_DATA_DIR,
                    "ranges": ranges,
                    "routes": routes,
                },
            },
            {
                "type": "portmap",
                "capabilities": { "portMappings": true },
            },
        ],
    });
    let mut text = serde_json::to_string_pretty(&config).expect("a JSON value always serializes");
    text.push('\n');
    text
}

/// The `ip route replace` commands node `node` needs to reach every other node's pods, as
/// argument vectors. `replace` rather than `add`, so that running them again is harmless.
///
/// # Panics
///
/// Panics when `node` is not a node of the plan.
pub fn routes(plan: &AddressPlan, node: u32) -> Vec<Vec<String>> {
    assert!(node < plan.node_count(), "node {node} is not in the plan");
    let mut commands = Vec::new();
    for family in &plan.families {
        for (other, address) in family.nodes.iter().enumerate() {
            if other as u32 == node {
                continue;
            }
            commands.push(route(address.pod_subnet, address.ip));
        }
    }
    commands
}

fn route(subnet: Cidr, via: IpAddr) -> Vec<String> {
    [
        "ip",
        "route",
        "replace",
        &subnet.to_string(),
        "via",
        &via.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn default_route(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "0.0.0.0/0",
        Family::Ipv6 => "::/0",
    }
}

/// One rule in the `nat` table's `POSTROUTING` chain, with the commands to check, add and
/// delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatRule {
    /// `iptables` or `ip6tables`.
    pub program: &'static str,
    /// The rule's match and target, without table, chain or action.
    pub spec: Vec<String>,
}

impl NatRule {
    /// The command that succeeds only if the rule is in place.
    pub fn check(&self) -> Vec<String> {
        self.command("-C")
    }

    /// The command that appends the rule; run it only when [`NatRule::check`] fails, or the
    /// rule is added twice.
    pub fn append(&self) -> Vec<String> {
        self.command("-A")
    }

    pub fn delete(&self) -> Vec<String> {
        self.command("-D")
    }

    fn command(&self, action: &str) -> Vec<String> {
        let head = [self.program, "-t", "nat", action, "POSTROUTING"].map(str::to_owned);
        head.into_iter().chain(self.spec.iter().cloned()).collect()
    }
}

/// The masquerade rules every node needs, one per family: traffic from a pod to anything
/// outside the pod network leaves with the node's address, which the rest of the world can
/// answer. Traffic between pods keeps its addresses.
pub fn masquerade_rules(plan: &AddressPlan) -> Vec<NatRule> {
    plan.families
        .iter()
        .map(|family| {
            let pods = family.pods.to_string();
            let spec = [
                "-s",
                &pods,
                "!",
                "-d",
                &pods,
                "-m",
                "comment",
                "--comment",
                MASQUERADE_COMMENT,
                "-j",
                "MASQUERADE",
            ];
            NatRule {
                program: match family.family {
                    Family::Ipv4 => "iptables",
                    Family::Ipv6 => "ip6tables",
                },
                spec: spec.map(str::to_owned).to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{IpMode, PlanInput};

    fn plan(mode: IpMode, workers: u32) -> AddressPlan {
        AddressPlan::new(&PlanInput {
            mode,
            workers,
            ..Default::default()
        })
        .unwrap()
    }

    fn argv(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn writes_a_bridge_conflist() {
        let plan = plan(IpMode::Ipv4, 2);
        let text = conflist(&plan.node_pod_subnets(1));
        let config: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            config,
            json!({
                "cniVersion": "1.0.0",
                "name": "kdind",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "kdind0",
                        "isGateway": true,
                        "ipMasq": false,
                        "hairpinMode": true,
                        "ipam": {
                            "type": "host-local",
                            "dataDir": "/run/cni-ipam",
                            "ranges": [[{"subnet": "10.244.2.0/24"}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": true}},
                ],
            })
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn gives_dual_stack_pods_both_families() {
        let plan = plan(IpMode::DualStack, 1);
        let config: Value = serde_json::from_str(&conflist(&plan.node_pod_subnets(0))).unwrap();
        let ipam = &config["plugins"][0]["ipam"];
        assert_eq!(
            ipam["ranges"],
            json!([[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:40:0:0:1::/80"}]])
        );
        assert_eq!(
            ipam["routes"],
            json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
        );
    }

    #[test]
    fn routes_to_every_other_node() {
        let plan = plan(IpMode::Ipv4, 2);
        assert_eq!(
            routes(&plan, 0),
            vec![
                argv("ip route replace 10.244.2.0/24 via 10.192.0.3"),
                argv("ip route replace 10.244.3.0/24 via 10.192.0.4"),
            ]
        );
        assert_eq!(
            routes(&plan, 2),
            vec![
                argv("ip route replace 10.244.1.0/24 via 10.192.0.2"),
                argv("ip route replace 10.244.2.0/24 via 10.192.0.3"),
            ]
        );
        assert!(routes(&plan_alone(), 0).is_empty());
    }

    fn plan_alone() -> AddressPlan {
        plan(IpMode::Ipv4, 0)
    }

    #[test]
    fn routes_each_family() {
        let plan = plan(IpMode::DualStack, 1);
        assert_eq!(
            routes(&plan, 1),
            vec![
                argv("ip route replace 10.244.1.0/24 via 10.192.0.2"),
                argv("ip route replace fd00:40:0:0:1::/80 via fd00:20::2"),
            ]
        );
    }

    #[test]
    fn masquerades_only_what_leaves_the_pod_network() {
        let rules = masquerade_rules(&plan(IpMode::Ipv4, 1));
        assert_eq!(rules.len(), 1);
        let rule = &rules[0];
        let spec = "-s 10.244.0.0/16 ! -d 10.244.0.0/16 -m comment --comment";
        let mut expected = argv(&format!("iptables -t nat -A POSTROUTING {spec}"));
        expected.extend([
            MASQUERADE_COMMENT.to_owned(),
            "-j".into(),
            "MASQUERADE".into(),
        ]);
        assert_eq!(rule.append(), expected);
        assert_eq!(rule.check()[3], "-C");
        assert_eq!(rule.delete()[3], "-D");

        let rules = masquerade_rules(&plan(IpMode::DualStack, 1));
        assert_eq!(
            rules.iter().map(|r| r.program).collect::<Vec<_>>(),
            ["iptables", "ip6tables"]
        );
        assert_eq!(rules[1].spec[1], "fd00:40::/64");
    }
}
