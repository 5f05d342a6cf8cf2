//! The AT port: line discipline, parameters, result codes.
