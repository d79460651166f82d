//! What the workers share, tested across them: the command line (`cli`), credentials without
//! Google (`credentials`), endpoints that accept a connection and never answer
//! (`silent_endpoints`), Postgres over TLS (`postgres_tls`) and the lake's backends (`lake`).

mod cli;
mod credentials;
mod lake;
mod postgres_tls;
mod silent_endpoints;
