//! `GET /api/v1/queue` and `POST /api/v1/queue/next`: whose queue, which channel, and
//! where a page starts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::domain::compliance::Channel;
use crate::domain::principal::Principal;
use crate::domain::queue::{Position, Reason};
use crate::domain::search::{AgentFilter, Sort, SortField};
use crate::error::Result;
use crate::lists::DEFAULT_PAGE_SIZE;
use crate::lists::accounts::{CHANNELS, decode_search_cursor, encode_search_cursor, sort_signature};
use crate::lists::params::{self, Param, Problems, schema};

/// A parsed queue request.
pub struct QueueRequest {
    pub agent: Option<AgentFilter>,
    pub channel: Channel,
    pub page_size: usize,
    pub start: Option<Position>,
}

struct Request {
    caller: uuid::Uuid,
    queue: QueueRequest,
    cursor: Option<String>,
}

const PARAMS: &[Param<Request>] = &[
    Param::new(
        "agent_id",
        "Whose queue: `me` (the default), a user id, or `unassigned` (the team queue); other than `me` for managers and admins only.",
        schema::text,
        |r, v| r.queue.agent = v.agent(r.caller),
    ),
    Param::new(
        "channel",
        "The channel the agent will use (default `call`): accounts the guard blocks on it now are left out.",
        schema::one::<Channel>,
        |r, v| {
            if let Some(channel) = v.one(Channel::parse, CHANNELS) {
                r.queue.channel = channel;
            }
        },
    ),
    Param::new("page_size", "", schema::page_size, |r, v| r.queue.page_size = v.page_size()),
    Param::new("cursor", "`next_cursor` of the previous page.", schema::text, |r, v| {
        r.cursor = Some(v.raw().to_owned())
    }),
];

params::described_by!(
    /// The work queue's parameters.
    QueueParams,
    PARAMS
);

/// `?channel=` of `POST /queue/next`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NextParams {
    /// The channel the agent will use (default `call`).
    pub channel: Option<Channel>,
    /// An account not to claim: the one just worked ("save and next"), which the index
    /// may not know yet was.
    pub skip: Option<uuid::Uuid>,
}

/// The queue's sort within a tier.
const QUEUE_SORT: Sort = Sort {
    field: SortField::Queue,
    descending: true,
};

#[derive(Serialize, Deserialize)]
struct CursorBody {
    /// The tier, by name: a cursor stays meaningful when tiers are added.
    t: Reason,
    /// Where in the tier, as an account-list cursor of the queue's sort.
    c: Option<String>,
}

pub fn encode_cursor(position: Position) -> String {
    let body = CursorBody {
        t: position.reason,
        c: position.after.map(|a| encode_search_cursor(a, &sort_signature(QUEUE_SORT))),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

fn decode_cursor(cursor: &str) -> std::result::Result<Position, String> {
    let invalid = || "is not a cursor from this list; pass next_cursor from the previous page".to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let reason = body.t;
    let after = body
        .c
        .map(|c| decode_search_cursor(&c, &sort_signature(QUEUE_SORT), false))
        .transpose()?;
    Ok(Position { reason, after })
}

pub fn parse(raw: &str, caller: &Principal) -> Result<QueueRequest> {
    let mut p = Problems::default();
    let mut request = Request {
        caller: caller.user_id,
        queue: QueueRequest {
            agent: None,
            channel: Channel::Call,
            page_size: DEFAULT_PAGE_SIZE as usize,
            start: None,
        },
        cursor: None,
    };
    params::read(raw, PARAMS, &mut request, &mut p);
    let Request { mut queue, cursor, .. } = request;
    if let Some(cursor) = cursor {
        queue.start = decode_cursor(&cursor).map_err(|m| p.push("cursor", m)).ok();
    }
    p.finish()?;
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_names_its_tier_and_place() {
        let start = Position {
            reason: Reason::NextActionDue,
            after: None,
        };
        assert_eq!(decode_cursor(&encode_cursor(start)), Ok(start));
        assert!(
            decode_cursor(&URL_SAFE_NO_PAD.encode(br#"{"t":2,"c":null}"#)).is_err(),
            "a tier by number is refused"
        );
        assert!(decode_cursor("bm9wZQ").is_err());
    }
}
