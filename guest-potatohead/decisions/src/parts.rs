//! The podtato-head parts: their names and the ports the real application expects.

use serde::{Deserialize, Serialize};

/// One part of the podtato-head application. Each becomes a Deployment and a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    Entry,
    Hat,
    LeftArm,
    RightArm,
    LeftLeg,
    RightLeg,
}

impl Part {
    /// Every part, in the order podtato-head lists them.
    pub const ALL: [Part; 6] = [
        Part::Entry,
        Part::Hat,
        Part::LeftArm,
        Part::RightArm,
        Part::LeftLeg,
        Part::RightLeg,
    ];

    /// The part's name as used in object names, image names and the service-discovery file.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Entry => "entry",
            Part::Hat => "hat",
            Part::LeftArm => "left-arm",
            Part::RightArm => "right-arm",
            Part::LeftLeg => "left-leg",
            Part::RightLeg => "right-leg",
        }
    }

    /// Whether the part's server answers `GET /` with 200, so an HTTP probe can check it: only the
    /// entry part serves a page there; the others answer 404 on `/`.
    pub fn serves_root_page(self) -> bool {
        self == Part::Entry
    }

    /// The Service port podtato-head gives this part (its upstream manifests use these, and the
    /// entry part's service discovery points at them).
    pub fn default_service_port(self) -> i32 {
        match self {
            Part::Entry => 9000,
            Part::Hat => 9001,
            Part::LeftLeg => 9002,
            Part::LeftArm => 9003,
            Part::RightLeg => 9004,
            Part::RightArm => 9005,
        }
    }
}

/// Every podtato-head server listens on this port inside its container (set via `PODTATO_PORT`).
pub const CONTAINER_PORT: i32 = 9000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_round_trip_through_serde() {
        for part in Part::ALL {
            let json = serde_json::to_string(&part).unwrap();
            assert_eq!(json, format!("\"{}\"", part.as_str()));
            assert_eq!(serde_json::from_str::<Part>(&json).unwrap(), part);
        }
    }

    #[test]
    fn every_part_has_a_distinct_podtato_port() {
        let mut ports: Vec<i32> = Part::ALL.iter().map(|p| p.default_service_port()).collect();
        ports.sort();
        assert_eq!(ports, vec![9000, 9001, 9002, 9003, 9004, 9005]);
    }
}
