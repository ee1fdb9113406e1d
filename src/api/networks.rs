//! The API's networks endpoints.

use super::{Ctx, Reply, Req, Result};

pub(super) fn route(_ctx: &Ctx, _req: &mut Req, _seg: &[&str]) -> Option<Result<Reply>> {
    None
}
