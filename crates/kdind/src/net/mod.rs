//! The address plan of a cluster: which network its nodes share, and every address and subnet
//! handed out in it, decided and checked before anything is created.
//!
//! A cluster uses three networks per address family:
//!
//! - the **management** network, a container-engine network the node containers sit on: the
//!   gateway is its first address, the control plane its second and worker `N` its `N + 2`th;
//! - the **pod** network, cut into one subnet per node (see [`pod_subnet_index`]); kdind hands
//!   these out itself rather than letting the controller manager do it;
//! - the **service** network, whose first address is the API server's service and whose tenth is
//!   the cluster DNS.
//!
//! Several clusters run side by side by giving each a cluster id, which moves its management
//! network (see [`AddressPlan::new`]). Their pod and service networks may be the same: those
//! addresses never leave the nodes of one cluster.

pub mod cidr;

use std::fmt;
use std::net::IpAddr;

pub use cidr::{Cidr, CidrError, Family};

/// Largest cluster id; 255 is left out so that an id never fills a byte with ones.
pub const MAX_CLUSTER_ID: u32 = 254;

/// Prefix length of each node's IPv4 pod subnet: 254 pods per node.
pub const NODE_POD_PREFIX_V4: u8 = 24;
/// Prefix length of each node's IPv6 pod subnet, leaving 48 bits for the node's pods.
pub const NODE_POD_PREFIX_V6: u8 = 80;

/// Errors from planning a cluster's addresses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("invalid {input}")]
    Cidr {
        input: Input,
        #[source]
        source: CidrError,
    },
    #[error(
        "{input} {cidr} is {family}, but the cluster is {mode}; give an {expected} CIDR such as \
         {example}"
    )]
    WrongFamily {
        input: Input,
        cidr: Cidr,
        family: Family,
        mode: IpMode,
        expected: Family,
        example: Cidr,
    },
    #[error(
        "a dual-stack cluster needs one IPv4 and one IPv6 {input}, separated by a comma, such as \
         {example}; got {text:?}"
    )]
    DualStackPair {
        input: Input,
        text: String,
        example: String,
    },
    #[error("{input} {text:?} has more than one CIDR, but the cluster is {mode}; give just one")]
    TooManyCidrs {
        input: Input,
        text: String,
        mode: IpMode,
    },
    #[error(
        "cluster id {0} is out of range; give 1 to {MAX_CLUSTER_ID}, or 0 for the default cluster"
    )]
    ClusterId(u32),
    #[error(
        "cluster id {id} cannot be placed in {input} {cidr}: it replaces bits {from}-{to} of \
         the address, so the prefix must be /{to} or longer"
    )]
    ClusterIdPlacement {
        id: u32,
        input: Input,
        cidr: Cidr,
        from: u8,
        to: u8,
    },
    #[error(
        "{input} {cidr} has room for {room} node addresses, but {needed} are needed (the \
         control plane and {workers} workers, after the gateway); give a network with a shorter \
         prefix or fewer workers (NUM_NODES)"
    )]
    ManagementTooSmall {
        input: Input,
        cidr: Cidr,
        room: u128,
        needed: u128,
        workers: u32,
    },
    #[error(
        "{input} {cidr} holds {room} node subnets of /{node_prefix} after the unused first one, \
         but the control plane and {workers} workers need {needed}; give a network with a \
         shorter prefix or fewer workers (NUM_NODES)"
    )]
    PodsTooSmall {
        input: Input,
        cidr: Cidr,
        node_prefix: u8,
        room: u128,
        needed: u128,
        workers: u32,
    },
    #[error(
        "{input} {cidr} is larger than the API server accepts; give a prefix of /{min_prefix} \
         or longer"
    )]
    ServicesTooLarge {
        input: Input,
        cidr: Cidr,
        min_prefix: u8,
    },
    #[error(
        "{input} {cidr} is too small to hold the cluster DNS at its tenth address; give a prefix \
         of /{max_prefix} or shorter"
    )]
    ServicesTooSmall {
        input: Input,
        cidr: Cidr,
        max_prefix: u8,
    },
    #[error("{input} {cidr} overlaps {other_input} {other}; give networks that share no address")]
    Overlap {
        input: Input,
        cidr: Cidr,
        other_input: Input,
        other: Cidr,
    },
}

/// The inputs the plan is made from, named as errors name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Management,
    Pods,
    Services,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Input::Management => "management network (MGMT_CIDRS)",
            Input::Pods => "pod network (POD_NETWORK_CIDR)",
            Input::Services => "service network (SERVICE_CIDR)",
        })
    }
}

/// Which address families the cluster uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IpMode {
    #[default]
    Ipv4,
    Ipv6,
    /// Both families, IPv4 first: it is the family of a Service that asks for none.
    DualStack,
}

impl IpMode {
    /// The families of this mode, the primary one first.
    pub fn families(self) -> &'static [Family] {
        match self {
            IpMode::Ipv4 => &[Family::Ipv4],
            IpMode::Ipv6 => &[Family::Ipv6],
            IpMode::DualStack => &[Family::Ipv4, Family::Ipv6],
        }
    }
}

impl fmt::Display for IpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpMode::Ipv4 => "IPv4-only",
            IpMode::Ipv6 => "IPv6-only",
            IpMode::DualStack => "dual-stack",
        })
    }
}

/// What a plan is made from. Networks left out take the defaults of [`default_cidr`]; a
/// dual-stack cluster gives each network as `IPv4-CIDR,IPv6-CIDR` (in either order), the way
/// kubeadm's `podSubnet` is written.
#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    pub mode: IpMode,
    /// 0 for the default cluster, else 1 to [`MAX_CLUSTER_ID`].
    pub cluster_id: u32,
    pub management: Option<String>,
    pub pods: Option<String>,
    pub services: Option<String>,
    pub workers: u32,
}

/// The default network of each input and family.
pub fn default_cidr(input: Input, family: Family) -> Cidr {
    let text = match (input, family) {
        (Input::Management, Family::Ipv4) => "10.192.0.0/24",
        (Input::Management, Family::Ipv6) => "fd00:20::/64",
        (Input::Pods, Family::Ipv4) => "10.244.0.0/16",
        (Input::Pods, Family::Ipv6) => "fd00:40::/64",
        (Input::Services, Family::Ipv4) => "10.96.0.0/12",
        // The API server refuses IPv6 service networks wider than /108 (2^20 addresses).
        (Input::Services, Family::Ipv6) => "fd00:30::/112",
    };
    Cidr::parse(text).expect("default networks are valid")
}

/// Which host of the management network node `node` is: the gateway is host 1, so the control
/// plane (node 0) is host 2 and worker `N` is host `N + 2`.
pub fn node_host(node: u32) -> u128 {
    u128::from(node) + 2
}

/// Which of the pod network's node-sized subnets node `node` gets: the control plane (node 0)
/// gets subnet 1 and worker `N` subnet `N + 1`. Subnet 0 is left unused, so that a node's subnet
/// can be told from the pod network's own address at a glance.
pub fn pod_subnet_index(node: u32) -> u128 {
    u128::from(node) + 1
}

/// Prefix length of each node's pod subnet in `family`.
pub fn node_pod_prefix(family: Family) -> u8 {
    match family {
        Family::Ipv4 => NODE_POD_PREFIX_V4,
        Family::Ipv6 => NODE_POD_PREFIX_V6,
    }
}

/// Where the cluster id goes in a management address, as (first bit, width): the third group of
/// the address as written in both families. The third hextet rather than the fourth keeps the
/// id readable in the shortened form (`fd00:20:14::`), and both places lie well within the
/// default prefixes.
fn cluster_id_field(family: Family) -> (u8, u8) {
    match family {
        Family::Ipv4 => (16, 8),
        Family::Ipv6 => (32, 16),
    }
}

/// The networks of one address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyPlan {
    pub family: Family,
    pub management: Cidr,
    pub gateway: IpAddr,
    pub pods: Cidr,
    pub services: Cidr,
    /// The `kubernetes` Service: the first address of the service network.
    pub api_service: IpAddr,
    /// The tenth address of the service network. kubeadm makes the DNS Service single-stack,
    /// so only the primary family's is the cluster DNS; see [`AddressPlan::dns_ip`].
    pub dns: IpAddr,
    /// Every node's address and pod subnet; the control plane first, then worker 1, 2, ...
    pub nodes: Vec<NodeAddress>,
}

/// One node's place in one address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddress {
    pub ip: IpAddr,
    pub pod_subnet: Cidr,
}

/// Every address of a cluster, checked: networks of the right family, large enough and apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPlan {
    pub mode: IpMode,
    pub cluster_id: u32,
    pub workers: u32,
    /// One plan per family of `mode`, the primary family first.
    pub families: Vec<FamilyPlan>,
}

impl AddressPlan {
    /// Plans the cluster's addresses, or says which input is wrong and what would do.
    ///
    /// A non-zero cluster id replaces the third group of the management network's address: the
    /// third octet for IPv4 (10.192.0.0/24 becomes 10.192.20.0/24 for id 20) and the third hextet
    /// for IPv6 (fd00:20::/64 becomes fd00:20:14::/64, 20 being 0x14). It does so whether the
    /// network was given or defaulted, so that clusters made with the same options but different
    /// ids never share a management network.
    ///
    /// # Errors
    ///
    /// Fails on a text that is not a CIDR or not a network address, a network of the wrong
    /// family, a cluster id out of range, networks too small for the nodes (or a service network
    /// too large for the API server), and networks that overlap.
    pub fn new(input: &PlanInput) -> Result<Self, NetError> {
        if input.cluster_id > MAX_CLUSTER_ID {
            return Err(NetError::ClusterId(input.cluster_id));
        }

        let management = networks(input.mode, Input::Management, input.management.as_deref())?;
        let pods = networks(input.mode, Input::Pods, input.pods.as_deref())?;
        let services = networks(input.mode, Input::Services, input.services.as_deref())?;

        let mut families = Vec::new();
        for (i, &family) in input.mode.families().iter().enumerate() {
            let management = place_cluster_id(management[i], input.cluster_id)?;
            families.push(plan_family(
                family,
                management,
                pods[i],
                services[i],
                input.workers,
            )?);
        }

        Ok(Self {
            mode: input.mode,
            cluster_id: input.cluster_id,
            workers: input.workers,
            families,
        })
    }

    /// The plan of the primary family.
    pub fn primary(&self) -> &FamilyPlan {
        &self.families[0]
    }

    /// The plan of `family`, if the cluster uses it.
    pub fn family(&self, family: Family) -> Option<&FamilyPlan> {
        self.families.iter().find(|plan| plan.family == family)
    }

    /// Number of nodes: the control plane and the workers.
    pub fn node_count(&self) -> u32 {
        self.workers + 1
    }

    /// The addresses of node `node` (0 is the control plane), the primary family first.
    ///
    /// # Panics
    ///
    /// Panics when `node` is not a node of the plan.
    pub fn node_ips(&self, node: u32) -> Vec<IpAddr> {
        self.families
            .iter()
            .map(|plan| plan.nodes[node as usize].ip)
            .collect()
    }

    /// The pod subnets of node `node`, the primary family first.
    ///
    /// # Panics
    ///
    /// Panics when `node` is not a node of the plan.
    pub fn node_pod_subnets(&self, node: u32) -> Vec<Cidr> {
        self.families
            .iter()
            .map(|plan| plan.nodes[node as usize].pod_subnet)
            .collect()
    }

    /// The control plane's address in the primary family: where the API server listens.
    pub fn control_plane_ip(&self) -> IpAddr {
        self.primary().nodes[0].ip
    }

    /// The pod networks, the primary family first.
    pub fn pod_networks(&self) -> Vec<Cidr> {
        self.families.iter().map(|plan| plan.pods).collect()
    }

    /// The service networks, the primary family first.
    pub fn service_networks(&self) -> Vec<Cidr> {
        self.families.iter().map(|plan| plan.services).collect()
    }

    /// The cluster DNS address: the primary family's, the only one kubeadm gives its Service.
    pub fn dns_ip(&self) -> IpAddr {
        self.primary().dns
    }
}

/// Joins values with commas, the way Kubernetes writes dual-stack settings.
pub fn comma_list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The networks given for `input` (or its defaults), one per family of `mode` in its order.
fn networks(mode: IpMode, input: Input, text: Option<&str>) -> Result<Vec<Cidr>, NetError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(mode
            .families()
            .iter()
            .map(|&f| default_cidr(input, f))
            .collect());
    };

    let parsed = text
        .split(',')
        .map(|part| Cidr::parse(part).map_err(|source| NetError::Cidr { input, source }))
        .collect::<Result<Vec<_>, _>>()?;

    match (mode, parsed.as_slice()) {
        (IpMode::DualStack, [a, b]) if a.family() != b.family() => {
            let mut pair = vec![*a, *b];
            pair.sort_by_key(Cidr::family);
            Ok(pair)
        }
        (IpMode::DualStack, _) => Err(NetError::DualStackPair {
            input,
            text: text.to_owned(),
            example: comma_list(&[
                default_cidr(input, Family::Ipv4),
                default_cidr(input, Family::Ipv6),
            ]),
        }),
        (_, [one]) => {
            let expected = mode.families()[0];
            if one.family() != expected {
                return Err(NetError::WrongFamily {
                    input,
                    cidr: *one,
                    family: one.family(),
                    mode,
                    expected,
                    example: default_cidr(input, expected),
                });
            }
            Ok(vec![*one])
        }
        _ => Err(NetError::TooManyCidrs {
            input,
            text: text.to_owned(),
            mode,
        }),
    }
}

/// The management network of cluster `id`; the network itself for the default cluster.
fn place_cluster_id(management: Cidr, id: u32) -> Result<Cidr, NetError> {
    if id == 0 {
        return Ok(management);
    }
    let (from, width) = cluster_id_field(management.family());
    management
        .with_field(from, width, id.into())
        .ok_or(NetError::ClusterIdPlacement {
            id,
            input: Input::Management,
            cidr: management,
            from,
            to: from + width,
        })
}

/// Checks and fills in the networks of one family.
fn plan_family(
    family: Family,
    management: Cidr,
    pods: Cidr,
    services: Cidr,
    workers: u32,
) -> Result<FamilyPlan, NetError> {
    check_apart(&[
        (Input::Management, management),
        (Input::Pods, pods),
        (Input::Services, services),
    ])?;
    check_services(services)?;
    check_management_room(management, workers)?;
    check_pod_room(pods, workers)?;

    let nodes = (0..=workers)
        .map(|node| NodeAddress {
            ip: management.nth(node_host(node)).expect("room was checked"),
            pod_subnet: pods
                .subnet(node_pod_prefix(family), pod_subnet_index(node))
                .expect("room was checked"),
        })
        .collect();

    Ok(FamilyPlan {
        family,
        management,
        gateway: management.nth(1).expect("room was checked"),
        pods,
        services,
        api_service: services.nth(1).expect("size was checked"),
        dns: services.nth(10).expect("size was checked"),
        nodes,
    })
}

fn check_apart(networks: &[(Input, Cidr)]) -> Result<(), NetError> {
    for (i, &(input, cidr)) in networks.iter().enumerate() {
        for &(other_input, other) in &networks[i + 1..] {
            if cidr.overlaps(&other) {
                return Err(NetError::Overlap {
                    input,
                    cidr,
                    other_input,
                    other,
                });
            }
        }
    }
    Ok(())
}

/// The API server takes at most 2^20 service addresses, and the DNS needs a tenth one.
fn check_services(services: Cidr) -> Result<(), NetError> {
    let bits = services.family().bits();
    if services.host_bits() > 20 {
        return Err(NetError::ServicesTooLarge {
            input: Input::Services,
            cidr: services,
            min_prefix: bits - 20,
        });
    }
    // Four host bits give 16 addresses: the network's own, ten more, and a broadcast for IPv4.
    if services.host_bits() < 4 {
        return Err(NetError::ServicesTooSmall {
            input: Input::Services,
            cidr: services,
            max_prefix: bits - 4,
        });
    }
    Ok(())
}

/// Hosts 2 to `workers + 2` must exist, and for IPv4 must not be the broadcast address.
fn check_management_room(management: Cidr, workers: u32) -> Result<(), NetError> {
    let unusable = match management.family() {
        Family::Ipv4 => 3, // network, gateway, broadcast
        Family::Ipv6 => 2, // network (the subnet-router anycast address), gateway
    };
    let room = management.size().saturating_sub(unusable);
    let needed = u128::from(workers) + 1;
    if room < needed {
        return Err(NetError::ManagementTooSmall {
            input: Input::Management,
            cidr: management,
            room,
            needed,
            workers,
        });
    }
    Ok(())
}

fn check_pod_room(pods: Cidr, workers: u32) -> Result<(), NetError> {
    let node_prefix = node_pod_prefix(pods.family());
    let room = pods.subnet_count(node_prefix).saturating_sub(1);
    let needed = u128::from(workers) + 1;
    if room < needed {
        return Err(NetError::PodsTooSmall {
            input: Input::Pods,
            cidr: pods,
            node_prefix,
            room,
            needed,
            workers,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(input: PlanInput) -> AddressPlan {
        AddressPlan::new(&input).unwrap()
    }

    fn error(input: PlanInput) -> NetError {
        AddressPlan::new(&input).unwrap_err()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn workers(workers: u32) -> PlanInput {
        PlanInput {
            workers,
            ..Default::default()
        }
    }

    #[test]
    fn plans_the_default_cluster() {
        let plan = plan(workers(2));
        let v4 = plan.primary();
        assert_eq!(v4.management, cidr("10.192.0.0/24"));
        assert_eq!(v4.gateway, ip("10.192.0.1"));
        assert_eq!(v4.api_service, ip("10.96.0.1"));
        assert_eq!(v4.dns, ip("10.96.0.10"));
        assert_eq!(
            v4.nodes,
            vec![
                NodeAddress {
                    ip: ip("10.192.0.2"),
                    pod_subnet: cidr("10.244.1.0/24")
                },
                NodeAddress {
                    ip: ip("10.192.0.3"),
                    pod_subnet: cidr("10.244.2.0/24")
                },
                NodeAddress {
                    ip: ip("10.192.0.4"),
                    pod_subnet: cidr("10.244.3.0/24")
                },
            ]
        );
        assert_eq!(plan.control_plane_ip(), ip("10.192.0.2"));
        assert_eq!(plan.node_ips(2), vec![ip("10.192.0.4")]);
        assert_eq!(plan.node_count(), 3);
        assert_eq!(comma_list(&plan.pod_networks()), "10.244.0.0/16");
    }

    #[test]
    fn assigns_hosts_and_subnets_by_node_number() {
        assert_eq!(node_host(0), 2);
        assert_eq!(node_host(7), 9);
        assert_eq!(pod_subnet_index(0), 1);
        assert_eq!(pod_subnet_index(7), 8);
    }

    #[test]
    fn moves_the_management_network_by_cluster_id() {
        let plan = plan(PlanInput {
            cluster_id: 20,
            ..workers(1)
        });
        assert_eq!(plan.primary().management, cidr("10.192.20.0/24"));
        assert_eq!(plan.primary().gateway, ip("10.192.20.1"));
        assert_eq!(plan.node_ips(1), vec![ip("10.192.20.3")]);
        assert_eq!(plan.primary().pods, cidr("10.244.0.0/16"), "pods stay put");

        let given = plan_with_management("10.50.7.0/24", 254);
        assert_eq!(given.primary().management, cidr("10.50.254.0/24"));
    }

    fn plan_with_management(management: &str, cluster_id: u32) -> AddressPlan {
        plan(PlanInput {
            cluster_id,
            management: Some(management.into()),
            ..workers(1)
        })
    }

    #[test]
    fn refuses_cluster_ids_out_of_range_or_place() {
        let err = error(PlanInput {
            cluster_id: 255,
            ..workers(1)
        });
        assert!(matches!(err, NetError::ClusterId(255)));
        assert!(err.to_string().contains("1 to 254"), "{err}");

        let err = error(PlanInput {
            cluster_id: 3,
            management: Some("10.192.0.0/16".into()),
            ..workers(1)
        });
        assert!(
            matches!(err, NetError::ClusterIdPlacement { to: 24, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("/24 or longer"), "{err}");

        // Without an id a /16 is fine.
        assert_eq!(
            plan_with_management("10.192.0.0/16", 0)
                .primary()
                .management,
            cidr("10.192.0.0/16")
        );
    }

    #[test]
    fn plans_ipv6() {
        let plan = plan(PlanInput {
            mode: IpMode::Ipv6,
            cluster_id: 20,
            ..workers(1)
        });
        let v6 = plan.primary();
        assert_eq!(v6.family, Family::Ipv6);
        assert_eq!(v6.management, cidr("fd00:20:14::/64"));
        assert_eq!(v6.gateway, ip("fd00:20:14::1"));
        assert_eq!(plan.control_plane_ip(), ip("fd00:20:14::2"));
        assert_eq!(v6.nodes[1].pod_subnet, cidr("fd00:40:0:0:2::/80"));
        assert_eq!(v6.dns, ip("fd00:30::a"));
        assert_eq!(v6.api_service, ip("fd00:30::1"));
    }

    #[test]
    fn plans_dual_stack_with_ipv4_first() {
        let plan = plan(PlanInput {
            mode: IpMode::DualStack,
            pods: Some("fd00:44::/64,10.250.0.0/16".into()),
            ..workers(1)
        });
        assert_eq!(
            plan.pod_networks(),
            vec![cidr("10.250.0.0/16"), cidr("fd00:44::/64")]
        );
        assert_eq!(plan.node_ips(0), vec![ip("10.192.0.2"), ip("fd00:20::2")]);
        assert_eq!(
            plan.node_pod_subnets(1),
            vec![cidr("10.250.2.0/24"), cidr("fd00:44:0:0:2::/80")]
        );
        assert_eq!(plan.dns_ip(), ip("10.96.0.10"));
        assert_eq!(plan.family(Family::Ipv6).unwrap().gateway, ip("fd00:20::1"));
    }

    #[test]
    fn dual_stack_needs_one_network_of_each_family() {
        for text in ["10.244.0.0/16", "10.244.0.0/16,10.245.0.0/16", "a,b,c"] {
            let err = AddressPlan::new(&PlanInput {
                mode: IpMode::DualStack,
                pods: Some(text.into()),
                ..Default::default()
            })
            .unwrap_err();
            assert!(
                matches!(err, NetError::DualStackPair { .. } | NetError::Cidr { .. }),
                "{text}: {err}"
            );
        }
        let err = error(PlanInput {
            mode: IpMode::DualStack,
            services: Some("10.96.0.0/12".into()),
            ..Default::default()
        });
        assert!(
            err.to_string()
                .contains("such as 10.96.0.0/12,fd00:30::/112"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_network_of_the_wrong_family() {
        let err = error(PlanInput {
            management: Some("fd00:20::/64".into()),
            ..Default::default()
        });
        assert!(matches!(
            err,
            NetError::WrongFamily {
                input: Input::Management,
                expected: Family::Ipv4,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "management network (MGMT_CIDRS) fd00:20::/64 is IPv6, but the cluster is \
             IPv4-only; give an IPv4 CIDR such as 10.192.0.0/24"
        );

        let err = error(PlanInput {
            mode: IpMode::Ipv6,
            pods: Some("10.244.0.0/16".into()),
            ..Default::default()
        });
        assert!(err.to_string().contains("such as fd00:40::/64"), "{err}");

        let err = error(PlanInput {
            pods: Some("10.244.0.0/16,10.245.0.0/16".into()),
            ..Default::default()
        });
        assert!(matches!(err, NetError::TooManyCidrs { .. }), "{err}");
    }

    #[test]
    fn names_the_input_that_does_not_parse() {
        let err = error(PlanInput {
            services: Some("10.96.0.0".into()),
            ..Default::default()
        });
        assert!(matches!(
            err,
            NetError::Cidr {
                input: Input::Services,
                source: CidrError::Syntax(_)
            }
        ));
        assert_eq!(err.to_string(), "invalid service network (SERVICE_CIDR)");

        let err = error(PlanInput {
            management: Some("10.192.0.5/24".into()),
            ..Default::default()
        });
        let NetError::Cidr { source, .. } = err else {
            panic!("unexpected {err}");
        };
        assert!(
            source
                .to_string()
                .contains("give the network address 10.192.0.0/24")
        );
    }

    #[test]
    fn sizes_the_management_network_for_the_nodes() {
        // A /29 has hosts 1-6 below the broadcast: gateway, control plane and 4 workers.
        let small = |workers| PlanInput {
            management: Some("10.192.0.0/29".into()),
            workers,
            ..Default::default()
        };
        let plan = plan(small(4));
        assert_eq!(plan.node_ips(4), vec![ip("10.192.0.6")]);

        let err = error(small(5));
        assert!(matches!(
            err,
            NetError::ManagementTooSmall {
                room: 5,
                needed: 6,
                ..
            }
        ));
        assert!(err.to_string().contains("5 workers"), "{err}");

        // The default /24 holds 253 nodes: hosts .2 to .254.
        assert!(AddressPlan::new(&workers(252)).is_ok());
        assert!(matches!(
            error(workers(253)),
            NetError::ManagementTooSmall { .. }
        ));
    }

    #[test]
    fn sizes_the_pod_network_for_the_nodes() {
        let pods = |workers| PlanInput {
            pods: Some("10.244.0.0/22".into()),
            workers,
            ..Default::default()
        };
        // Subnets 1 to 3 of a /22: the control plane and 2 workers.
        assert_eq!(
            plan(pods(2)).node_pod_subnets(2),
            vec![cidr("10.244.3.0/24")]
        );
        let err = error(pods(3));
        assert!(matches!(
            err,
            NetError::PodsTooSmall {
                room: 3,
                needed: 4,
                ..
            }
        ));

        let err = error(PlanInput {
            pods: Some("10.244.0.0/25".into()),
            ..Default::default()
        });
        assert!(
            matches!(err, NetError::PodsTooSmall { room: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn sizes_the_service_network() {
        let services = |text: &str| PlanInput {
            services: Some(text.into()),
            ..Default::default()
        };
        let err = error(services("10.0.0.0/11"));
        assert!(matches!(
            err,
            NetError::ServicesTooLarge { min_prefix: 12, .. }
        ));
        assert!(err.to_string().contains("/12 or longer"), "{err}");

        assert!(matches!(
            error(services("10.96.0.0/29")),
            NetError::ServicesTooSmall { max_prefix: 28, .. }
        ));
        assert_eq!(
            plan(services("10.96.0.0/28")).primary().dns,
            ip("10.96.0.10")
        );

        let err = error(PlanInput {
            mode: IpMode::Ipv6,
            services: Some("fd00:30::/64".into()),
            ..Default::default()
        });
        assert!(matches!(
            err,
            NetError::ServicesTooLarge {
                min_prefix: 108,
                ..
            }
        ));
    }

    #[test]
    fn refuses_overlapping_networks() {
        let err = error(PlanInput {
            pods: Some("10.192.0.0/16".into()),
            ..Default::default()
        });
        assert!(matches!(
            err,
            NetError::Overlap {
                input: Input::Management,
                other_input: Input::Pods,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "management network (MGMT_CIDRS) 10.192.0.0/24 overlaps pod network \
             (POD_NETWORK_CIDR) 10.192.0.0/16; give networks that share no address"
        );

        let err = error(PlanInput {
            services: Some("10.244.128.0/20".into()),
            ..Default::default()
        });
        assert!(matches!(
            err,
            NetError::Overlap {
                input: Input::Pods,
                other_input: Input::Services,
                ..
            }
        ));

        // Overlap is checked after the cluster id has moved the management network.
        let err = error(PlanInput {
            cluster_id: 5,
            management: Some("10.100.0.0/24".into()),
            services: Some("10.100.5.0/24".into()),
            ..Default::default()
        });
        assert!(matches!(err, NetError::Overlap { .. }), "{err}");
    }
}
