//! The six parts of a podtato-head, as the PodTatoHead API spells them: one spec field each.

use crate::spec::{PartSpec, PodTatoHeadSpec};

/// One part of the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Main,
    Hats,
    LeftLeg,
    LeftArm,
    RightLeg,
    RightArm,
}

/// Every part, in the order the guest returns their objects.
pub const PARTS: [Part; 6] = [
    Part::Main,
    Part::Hats,
    Part::LeftLeg,
    Part::LeftArm,
    Part::RightLeg,
    Part::RightArm,
];

impl Part {
    /// The spec field (`leftLeg`), as messages and the status name it.
    pub fn field(self) -> &'static str {
        match self {
            Part::Main => "main",
            Part::Hats => "hats",
            Part::LeftLeg => "leftLeg",
            Part::LeftArm => "leftArm",
            Part::RightLeg => "rightLeg",
            Part::RightArm => "rightArm",
        }
    }

    /// The part's spec, when the resource has it.
    pub fn of(self, spec: &PodTatoHeadSpec) -> Option<&PartSpec> {
        match self {
            Part::Main => spec.main.as_ref(),
            Part::Hats => spec.hats.as_ref(),
            Part::LeftLeg => spec.left_leg.as_ref(),
            Part::LeftArm => spec.left_arm.as_ref(),
            Part::RightLeg => spec.right_leg.as_ref(),
            Part::RightArm => spec.right_arm.as_ref(),
        }
    }

    /// The Service type when the part names none: the main part is the front door.
    pub fn default_service_type(self) -> &'static str {
        if self == Part::Main {
            "LoadBalancer"
        } else {
            "ClusterIP"
        }
    }
}
