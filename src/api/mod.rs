//! The Partner Portal API client.
