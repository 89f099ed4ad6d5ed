//! Device numbers as values: a device of one type (a request without the
//! access), the majors that have a driver on this machine, and whether the
//! kernel can be asked about a device safely. No syscalls but reading
//! /proc/devices; the probe child that uses them lives in `probe`.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::Path;

use devcg_engine::{Access, DeviceType, Request};
use nix::sys::stat::SFlag;
use thiserror::Error;

use crate::sys::{io_err, SysError};

/// A device number pair of one type; a [`Request`] without the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Device {
    pub ty: DeviceType,
    pub major: u32,
    pub minor: u32,
}

impl Device {
    pub fn new(ty: DeviceType, major: u32, minor: u32) -> Self {
        Device { ty, major, minor }
    }
    pub fn request(self, access: Access) -> Request {
        Request::new(self.ty, self.major, self.minor, access)
    }
    pub fn sflag(self) -> SFlag {
        match self.ty {
            DeviceType::Block => SFlag::S_IFBLK,
            DeviceType::Char => SFlag::S_IFCHR,
        }
    }
    pub fn dev_t(self) -> libc::dev_t {
        nix::sys::stat::makedev(u64::from(self.major), u64::from(self.minor))
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{}", self.ty, self.major, self.minor)
    }
}

/// Why a device is not probed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NotProbeable {
    #[error("no dev_t holds it (major < 4096 and minor < 2^20 only)")]
    Unrealizable,
    #[error("0:0 is no device: the kernel skips some of its checks")]
    Zero,
    #[error("its major has a driver (/proc/devices); opening it could have side effects")]
    HasDriver,
}

/// The majors that have a driver, per type, and the driver's name, from
/// /proc/devices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drivers {
    names: HashMap<(DeviceType, u32), String>,
}

impl Drivers {
    pub fn read() -> Result<Drivers, SysError> {
        let path = Path::new("/proc/devices");
        Ok(Drivers::parse(
            &fs::read_to_string(path).map_err(io_err("read", path))?,
        ))
    }

    pub fn parse(text: &str) -> Drivers {
        let mut d = Drivers::default();
        let mut section = None;
        for line in text.lines() {
            match line.trim() {
                "Character devices:" => section = Some(DeviceType::Char),
                "Block devices:" => section = Some(DeviceType::Block),
                l => {
                    let mut fields = l.split_whitespace();
                    let major = fields.next().and_then(|m| m.parse().ok());
                    if let (Some(ty), Some(m)) = (section, major) {
                        let name = fields.next().unwrap_or_default().to_string();
                        d.names.insert((ty, m), name);
                    }
                }
            }
        }
        d
    }

    pub fn has_driver(&self, ty: DeviceType, major: u32) -> bool {
        self.names.contains_key(&(ty, major))
    }

    /// The driver's name (`mem`, `sd`), if the major has one.
    pub fn name(&self, ty: DeviceType, major: u32) -> Option<&str> {
        self.names.get(&(ty, major)).map(String::as_str)
    }

    /// Whether the kernel can be asked about `dev` safely and meaningfully.
    pub fn probeable(&self, dev: Device) -> Result<(), NotProbeable> {
        if !dev.request(Access::NONE).is_realizable() {
            Err(NotProbeable::Unrealizable)
        } else if dev.major == 0 && dev.minor == 0 {
            Err(NotProbeable::Zero)
        } else if self.has_driver(dev.ty, dev.major) {
            Err(NotProbeable::HasDriver)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_devices() {
        let d = Drivers::parse(
            "Character devices:\n  1 mem\n 10 misc\n\nBlock devices:\n  7 loop\n259 blkext\n",
        );
        assert!(d.has_driver(DeviceType::Char, 1));
        assert!(!d.has_driver(DeviceType::Block, 1));
        assert!(d.has_driver(DeviceType::Block, 259));
        assert_eq!(d.probeable(Device::new(DeviceType::Block, 1, 3)), Ok(()));
        assert_eq!(
            d.probeable(Device::new(DeviceType::Char, 1, 3)),
            Err(NotProbeable::HasDriver)
        );
        assert_eq!(
            d.probeable(Device::new(DeviceType::Char, 0, 0)),
            Err(NotProbeable::Zero)
        );
        assert_eq!(
            d.probeable(Device::new(DeviceType::Char, 4096, 0)),
            Err(NotProbeable::Unrealizable)
        );
        assert_eq!(
            d.probeable(Device::new(DeviceType::Char, 4095, 1 << 20)),
            Err(NotProbeable::Unrealizable)
        );
    }
}
