//! What a pass over the guest folder leaves unserved, said once when it changes rather than at
//! every pass (the folder is listed every few seconds).

use std::path::Path;

use tracing::warn;

use crate::guests::folder::{Listing, MAX_GUESTS};

/// What the last pass left unserved.
#[derive(Default)]
pub(super) struct Unserved {
    /// Guest files past [`MAX_GUESTS`].
    over_limit: usize,
    /// Candidate files with no guest of their name.
    orphan_candidates: Vec<String>,
}

impl Unserved {
    /// Takes what `listing` leaves unserved, warning about what changed.
    pub(super) fn follow(&mut self, folder: &Path, listing: &mut Listing) {
        if listing.over_limit != self.over_limit {
            self.over_limit = listing.over_limit;
            if listing.over_limit > 0 {
                warn!(folder = %folder.display(), ignored = listing.over_limit, "the folder holds more than {MAX_GUESTS} guest files; those past it in name order are not served");
            }
        }
        if listing.orphan_candidates != self.orphan_candidates {
            self.orphan_candidates = std::mem::take(&mut listing.orphan_candidates);
            if !self.orphan_candidates.is_empty() {
                warn!(folder = %folder.display(), candidates = ?self.orphan_candidates, "candidate files with no guest of their name beside them (NAME.candidate.wasm shadows NAME.wasm) are not served");
            }
        }
    }
}
