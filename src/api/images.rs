//! The API's image endpoints: `/images/...`, `/build`, `/commit`, `/auth`.
//! `seg` is the whole path, split.

use super::{Ctx, Reply, Req, Result};

pub(super) fn route(_ctx: &Ctx, _req: &mut Req, _seg: &[&str]) -> Option<Result<Reply>> {
    None
}
