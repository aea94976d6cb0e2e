//! IP networks written as CIDRs, with the little arithmetic the address plan needs.
//!
//! Addresses of both families are handled as 128-bit integers: an IPv4 network is the same
//! arithmetic on a 32-bit width.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a text is not a usable CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    #[error("{0:?} is not a CIDR; give an address and a prefix length, such as 10.192.0.0/24")]
    Syntax(String),
    #[error("{text:?} has a prefix longer than /{max}, the most an address of its family has")]
    Prefix { text: String, max: u8 },
    #[error("{text:?} has bits set past its prefix; give the network address {network}")]
    Unaligned { text: String, network: Cidr },
}

/// The two address families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// Number of bits in an address of this family.
    pub fn bits(self) -> u8 {
        match self {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }

    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// A network: an address whose bits past the prefix are all zero, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network `addr/prefix`, or `None` when the prefix is too long for the family or `addr`
    /// has bits set past it.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let family = Family::of(addr);
        if prefix > family.bits() || to_bits(addr) & !mask(family, prefix) != 0 {
            return None;
        }
        Some(Self { addr, prefix })
    }

    /// Parses `10.192.0.0/24` or `fd00:20::/64`; the address must be the network's own.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let syntax = || CidrError::Syntax(text.to_owned());
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;

        let family = Family::of(addr);
        if prefix > family.bits() {
            return Err(CidrError::Prefix {
                text: text.to_owned(),
                max: family.bits(),
            });
        }

        let network = from_bits(family, to_bits(addr) & mask(family, prefix));
        if network != addr {
            return Err(CidrError::Unaligned {
                text: text.to_owned(),
                network: Self {
                    addr: network,
                    prefix,
                },
            });
        }
        Ok(Self { addr, prefix })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn family(&self) -> Family {
        Family::of(self.addr)
    }

    /// How many bits are left for hosts.
    pub fn host_bits(&self) -> u8 {
        self.family().bits() - self.prefix
    }

    /// Number of addresses in the network; saturates at `u128::MAX` for `::/0`.
    pub fn size(&self) -> u128 {
        1u128
            .checked_shl(self.host_bits().into())
            .unwrap_or(u128::MAX)
    }

    /// The `n`th address of the network (0 is the network address itself), if there is one.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        (n < self.size()).then(|| from_bits(self.family(), to_bits(self.addr) + n))
    }

    /// Whether `addr` lies in this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let family = self.family();
        Family::of(addr) == family && to_bits(addr) & mask(family, self.prefix) == self.bits()
    }

    /// Whether the two networks share any address. Networks either nest or are disjoint, so
    /// they overlap exactly when one holds the other's network address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// Number of subnets of length `prefix` this network splits into; 0 when `prefix` is
    /// shorter than the network's own, saturating at `u128::MAX`.
    pub fn subnet_count(&self, prefix: u8) -> u128 {
        if prefix < self.prefix || prefix > self.family().bits() {
            return 0;
        }
        1u128
            .checked_shl((prefix - self.prefix).into())
            .unwrap_or(u128::MAX)
    }

    /// The `index`th subnet of length `prefix`, counting from the start of the network.
    pub fn subnet(&self, prefix: u8, index: u128) -> Option<Cidr> {
        if index >= self.subnet_count(prefix) {
            return None;
        }
        let step = 1u128
            .checked_shl((self.family().bits() - prefix).into())
            .unwrap_or(0);
        let addr = from_bits(self.family(), self.bits() + index * step);
        Some(Self { addr, prefix })
    }

    /// The same network with its address's bits `[from, from + width)` (counted from the most
    /// significant bit) replaced by `value`; `None` when those bits are not all in the prefix or
    /// `value` does not fit in them.
    pub fn with_field(&self, from: u8, width: u8, value: u128) -> Option<Cidr> {
        let bits = self.family().bits();
        let end = u16::from(from) + u16::from(width);
        if end > u16::from(self.prefix) || width >= 128 || value >> width != 0 {
            return None;
        }
        let shift = bits - from - width;
        let field = ((1u128 << width) - 1) << shift;
        let addr = from_bits(self.family(), (self.bits() & !field) | (value << shift));
        Some(Self {
            addr,
            prefix: self.prefix,
        })
    }

    fn bits(&self) -> u128 {
        to_bits(self.addr)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn to_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `family` whose integer value is `bits`; callers keep IPv4 values below 2^32.
fn from_bits(family: Family, bits: u128) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// The netmask of `prefix` bits for `family`, as an integer of the family's width.
fn mask(family: Family, prefix: u8) -> u128 {
    let all = u128::MAX >> (128 - u32::from(family.bits()));
    let host = all.checked_shr(prefix.into()).unwrap_or(0);
    all & !host
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::parse(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_both_families() {
        for text in [
            "10.192.0.0/24",
            "0.0.0.0/0",
            "10.1.2.3/32",
            "fd00:20::/64",
            "::/0",
        ] {
            assert_eq!(cidr(text).to_string(), text);
        }
        assert_eq!(cidr(" 10.244.0.0/16 ").prefix(), 16);
        assert_eq!(cidr("fd00:20::/64").family(), Family::Ipv6);
    }

    #[test]
    fn refuses_what_is_not_a_network() {
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0/8",
            "10.0.0.0/x",
            "10.0.0.0/-1",
            "host/24",
        ] {
            assert!(
                matches!(Cidr::parse(bad), Err(CidrError::Syntax(_))),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(
            Cidr::parse("10.0.0.0/33"),
            Err(CidrError::Prefix {
                text: "10.0.0.0/33".into(),
                max: 32
            })
        );
        assert!(matches!(
            Cidr::parse("fd00::/129"),
            Err(CidrError::Prefix { max: 128, .. })
        ));
    }

    #[test]
    fn suggests_the_network_of_an_unaligned_address() {
        let err = Cidr::parse("10.192.0.5/24").unwrap_err();
        assert_eq!(
            err,
            CidrError::Unaligned {
                text: "10.192.0.5/24".into(),
                network: cidr("10.192.0.0/24")
            }
        );
        assert!(err.to_string().contains("10.192.0.0/24"), "{err}");
        assert!(Cidr::parse("fd00:20::1/64").is_err());
        assert!(Cidr::new(ip("10.0.0.1"), 24).is_none());
        assert_eq!(Cidr::new(ip("10.0.0.0"), 24), Some(cidr("10.0.0.0/24")));
    }

    #[test]
    fn counts_and_indexes_addresses() {
        let net = cidr("10.192.0.0/24");
        assert_eq!(net.size(), 256);
        assert_eq!(net.nth(1), Some(ip("10.192.0.1")));
        assert_eq!(net.nth(255), Some(ip("10.192.0.255")));
        assert_eq!(net.nth(256), None);
        assert_eq!(cidr("::/0").size(), u128::MAX);
        assert_eq!(cidr("fd00:30::/112").nth(10), Some(ip("fd00:30::a")));
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
    }

    #[test]
    fn tells_containment_and_overlap() {
        let pods = cidr("10.244.0.0/16");
        assert!(pods.contains(ip("10.244.255.1")));
        assert!(!pods.contains(ip("10.245.0.0")));
        assert!(!pods.contains(ip("::a")), "families never mix");

        assert!(pods.overlaps(&cidr("10.244.3.0/24")));
        assert!(cidr("10.244.3.0/24").overlaps(&pods));
        assert!(cidr("10.0.0.0/8").overlaps(&pods));
        assert!(!pods.overlaps(&cidr("10.96.0.0/12")));
        assert!(!pods.overlaps(&cidr("fd00::/8")));
        assert!(cidr("0.0.0.0/0").overlaps(&pods));
    }

    #[test]
    fn splits_into_subnets() {
        let pods = cidr("10.244.0.0/16");
        assert_eq!(pods.subnet_count(24), 256);
        assert_eq!(pods.subnet(24, 1), Some(cidr("10.244.1.0/24")));
        assert_eq!(pods.subnet(24, 255), Some(cidr("10.244.255.0/24")));
        assert_eq!(pods.subnet(24, 256), None);
        assert_eq!(pods.subnet_count(8), 0);
        assert_eq!(pods.subnet(16, 0), Some(pods));

        let pods6 = cidr("fd00:40::/64");
        assert_eq!(pods6.subnet(80, 3), Some(cidr("fd00:40:0:0:3::/80")));
        assert_eq!(cidr("::/0").subnet_count(128), u128::MAX);
    }

    #[test]
    fn replaces_a_field_of_the_prefix() {
        let net = cidr("10.192.0.0/24");
        assert_eq!(net.with_field(16, 8, 20), Some(cidr("10.192.20.0/24")));
        assert_eq!(net.with_field(16, 8, 256), None, "value too wide");
        assert_eq!(
            cidr("10.192.0.0/16").with_field(16, 8, 1),
            None,
            "field past the prefix"
        );

        let net6 = cidr("fd00:20::/64");
        assert_eq!(net6.with_field(32, 16, 20), Some(cidr("fd00:20:14::/64")));
    }
}
