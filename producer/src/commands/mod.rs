//! One module per subcommand.

pub mod enroll;
pub mod keygen;
pub mod study_json;
pub mod submit;
