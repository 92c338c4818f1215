//! One module per subcommand.

pub mod enroll;
pub mod keygen;
pub mod submit;
