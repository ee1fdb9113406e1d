//! Stacks from compose files (being written).
