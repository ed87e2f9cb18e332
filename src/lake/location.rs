//! Where a lake is: `--data` parsed once into a local folder or an S3 bucket and prefix, so no
//! other part of hspq looks at the text to tell which it is.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::LakeError;

/// A lake's place: a local folder or an S3 prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LakeLocation {
    /// A folder on this machine (created by the first sync).
    Local(PathBuf),
    /// `s3://bucket/prefix`; AWS settings come from the environment, as the AWS CLI reads them.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/` (empty for the bucket's root).
        prefix: String,
    },
}

impl FromStr for LakeLocation {
    type Err = LakeError;

    fn from_str(data: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = data.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LakeError::Location(format!(
                    "--data {data:?} names no bucket: use s3://BUCKET/PREFIX"
                )));
            }
            return Ok(LakeLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if data.contains("://") {
            return Err(LakeError::Location(format!(
                "--data {data:?}: only local folders and s3://bucket/prefix are supported"
            )));
        }
        if data.trim().is_empty() {
            return Err(LakeError::Location(
                "--data is empty: give a folder or s3://bucket/prefix".into(),
            ));
        }
        Ok(LakeLocation::Local(PathBuf::from(data)))
    }
}

impl fmt::Display for LakeLocation {
    /// As the user would type it: the folder, or `s3://bucket/prefix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeLocation::Local(dir) => write!(f, "{}", dir.display()),
            LakeLocation::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            LakeLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl From<&Path> for LakeLocation {
    fn from(dir: &Path) -> Self {
        LakeLocation::Local(dir.to_path_buf())
    }
}

impl From<PathBuf> for LakeLocation {
    fn from(dir: PathBuf) -> Self {
        LakeLocation::Local(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_parses_into_a_folder_or_a_bucket_and_prefix() {
        let s3: LakeLocation = "s3://bucket/some/prefix/".parse().unwrap();
        assert_eq!(
            s3,
            LakeLocation::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(s3.to_string(), "s3://bucket/some/prefix");
        assert_eq!(
            "s3://bucket".parse::<LakeLocation>().unwrap().to_string(),
            "s3://bucket"
        );
        assert_eq!(
            "./lake".parse::<LakeLocation>().unwrap(),
            LakeLocation::Local("./lake".into())
        );
        let no_bucket = "s3:///x".parse::<LakeLocation>().unwrap_err().to_string();
        assert!(no_bucket.contains("s3://BUCKET/PREFIX"), "{no_bucket}");
        let gcs = "gs://b/p".parse::<LakeLocation>().unwrap_err().to_string();
        assert!(gcs.contains("only local folders"), "{gcs}");
    }
}
