//! `--change` instructions for import and commit (`CMD ["sh"]`, `ENV K=V`, ...).
use oci_spec::image::Config;
use crate::error::ApiError;
pub fn apply(_changes: &[String]) -> Result<Config, ApiError> { Ok(Config::default()) }
