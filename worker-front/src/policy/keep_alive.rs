//! Keep-alive / one-request-per-instance model (being built; see issue 5).
