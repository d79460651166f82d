//! `log-ingest pull`: the same pipeline fed by streaming pull.
