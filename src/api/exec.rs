//! The API's interactive sessions: `POST /containers/{id}/attach`,
//! `/containers/{id}/resize`, `/containers/{id}/exec`, and
//! `/exec/{id}/start|resize|json`. `seg` is the whole path, split.

use super::{Ctx, Reply, Req, Result};

pub(super) fn route(_ctx: &Ctx, _req: &mut Req, _seg: &[&str]) -> Option<Result<Reply>> {
    None
}
