//! Never built: this package only makes `cargo metadata` fetch the corpus
//! sources. See `tests/support/corpus.rs`.
