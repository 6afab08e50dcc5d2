//! The worker node (being built; see issue 3).
