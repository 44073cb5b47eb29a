//! `user_created`: onboards a new user: one welcome email in the outbox (and
//! a `send_email` job to deliver it), a profile derived from the additional
//! properties, and the user marked onboarded (the daily signup statistics
//! count these), all committed with the job's completion.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use tasuki_core::{NewJob, Timestamp};
use tasuki_worker::{Done, Handler, JobContext, JobError};

use crate::{AppStore, MAX_ID, Onboarding, SEND_EMAIL_PRIORITY, SendEmail, User, UserProfile};

pub struct UserCreated {
    app: Arc<dyn AppStore>,
}

/// Below `send_email`'s, so that welcome emails are not starved.
const PRIORITY: i32 = 1;

impl UserCreated {
    pub fn new(app: Arc<dyn AppStore>) -> Self {
        Self { app }
    }

    /// The job that onboards a user who just signed up; the fields outside
    /// the contract that flexible validation kept go along.
    pub fn job(user: &User, additional_props: Map<String, Value>, now: Timestamp) -> NewJob {
        let payload = json!({
            "user_id": user.id,
            "user_data": {
                "id": user.id, "email": user.email, "age": user.age, "name": user.name,
                "bio": user.bio, "is_active": user.is_active,
            },
            "additional_props": additional_props,
        });
        NewJob::new(Self::JOB_TYPE, payload, now).priority(PRIORITY)
    }
}

#[derive(Deserialize)]
pub struct Payload {
    user_id: i64,
    user_data: UserData,
    #[serde(default)]
    additional_props: Map<String, Value>,
}

/// The user as it was created; onboarding itself reads the stored row (and
/// fails without retry when the user no longer exists).
#[derive(Deserialize)]
pub(crate) struct UserData {
    email: String,
    name: Option<String>,
}

#[async_trait]
impl Handler for UserCreated {
    const JOB_TYPE: &'static str = "user_created";
    type Payload = Payload;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["user_id", "user_data"],
            "properties": {
                "user_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                "user_data": {
                    "type": "object",
                    "required": ["id", "email", "age"],
                    "properties": {
                        "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        "email": {"type": "string", "format": "email"},
                        "age": {"type": "integer", "minimum": 0, "maximum": 200},
                        "name": {"type": ["string", "null"]},
                        "bio": {"type": ["string", "null"]},
                        "is_active": {"type": "boolean"}
                    }
                },
                "additional_props": {"type": "object"}
            }
        })
    }

    /// Onboarding commits with the job's completion: exactly once per
    /// completed job, and not at all for an attempt whose lease was lost.
    async fn handle(&self, ctx: &JobContext, payload: Payload) -> Result<Done, JobError> {
        let profile = derive_profile(&payload.additional_props);
        let user = &payload.user_data;
        let greeting = user.name.as_deref().unwrap_or(&user.email);
        let now = ctx.now();
        let writes = self.app.user_onboarding(Onboarding {
            user_id: payload.user_id,
            profile: profile.clone(),
            email_kind: "welcome".into(),
            email_subject: format!("Welcome, {greeting}!"),
            email_body: welcome_body(greeting, &profile),
            delivery: NewJob::new(<SendEmail as Handler>::JOB_TYPE, Value::Null, now)
                .priority(SEND_EMAIL_PRIORITY),
            now,
        });
        Ok(Done::result(json!({ "profile": profile })).with_writes(writes))
    }
}

fn welcome_body(greeting: &str, profile: &UserProfile) -> String {
    let mut body = format!("Hello {greeting},\n\nyour account is ready.");
    if !profile.recommendation_tags.is_empty() {
        body.push_str(&format!(
            "\nWe picked for you: {}.",
            profile.recommendation_tags.join(", ")
        ));
    }
    body
}

/// The profile that a user's additional properties imply: `hobby` (a string
/// or a list) gives recommendation tags, `location` a region, `score` a rank.
pub fn derive_profile(props: &Map<String, Value>) -> UserProfile {
    let hobbies: Vec<&str> = match props.get("hobby") {
        Some(Value::String(h)) => vec![h.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let recommendation_tags = hobbies
        .iter()
        .map(|h| slug(h))
        .filter(|h| !h.is_empty())
        .flat_map(|h| [format!("{h}-communities"), format!("{h}-events")])
        .collect();
    let region = props.get("location").and_then(Value::as_str).map(region_of);
    let rank = props.get("score").and_then(Value::as_f64).map(|score| {
        match score {
            s if s >= 90.0 => "platinum",
            s if s >= 75.0 => "gold",
            s if s >= 50.0 => "silver",
            _ => "bronze",
        }
        .to_owned()
    });
    UserProfile {
        recommendation_tags,
        region,
        rank,
    }
}

fn slug(text: &str) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.join("-")
}

/// The regional service that serves a location, by country or city name.
fn region_of(location: &str) -> String {
    const REGIONS: &[(&str, &[&str])] = &[
        (
            "asia-pacific",
            &[
                "japan",
                "tokyo",
                "osaka",
                "china",
                "korea",
                "seoul",
                "india",
                "singapore",
                "australia",
                "sydney",
            ],
        ),
        (
            "europe",
            &[
                "germany",
                "berlin",
                "france",
                "paris",
                "uk",
                "london",
                "spain",
                "madrid",
                "italy",
                "rome",
                "netherlands",
                "amsterdam",
            ],
        ),
        (
            "north-america",
            &[
                "usa",
                "united states",
                "new york",
                "san francisco",
                "canada",
                "toronto",
                "mexico",
            ],
        ),
        (
            "south-america",
            &[
                "brazil",
                "são paulo",
                "sao paulo",
                "argentina",
                "buenos aires",
                "chile",
                "peru",
            ],
        ),
        (
            "africa",
            &[
                "nigeria",
                "lagos",
                "kenya",
                "nairobi",
                "egypt",
                "cairo",
                "south africa",
            ],
        ),
    ];
    let place = location.trim().to_lowercase();
    REGIONS
        .iter()
        .find(|(_, names)| {
            names
                .iter()
                .any(|n| place == *n || place.split(", ").any(|part| part == *n))
        })
        .map_or("global", |(region, _)| region)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn hobby_location_and_score_shape_the_profile() {
        let profile = derive_profile(&props(
            json!({"hobby": "Board Games", "location": "Tokyo", "score": 80}),
        ));
        assert_eq!(
            profile.recommendation_tags,
            ["board-games-communities", "board-games-events"]
        );
        assert_eq!(profile.region.as_deref(), Some("asia-pacific"));
        assert_eq!(profile.rank.as_deref(), Some("gold"));
    }

    #[test]
    fn lists_unknown_places_and_missing_fields() {
        let profile = derive_profile(&props(
            json!({"hobby": ["chess", 3, "go"], "location": "Atlantis", "score": "high"}),
        ));
        assert_eq!(
            profile.recommendation_tags,
            [
                "chess-communities",
                "chess-events",
                "go-communities",
                "go-events"
            ]
        );
        assert_eq!(profile.region.as_deref(), Some("global"));
        assert_eq!(profile.rank, None);
        assert_eq!(derive_profile(&Map::new()), UserProfile::default());
        assert_eq!(
            derive_profile(&props(
                json!({"location": "Berlin, Germany", "score": 12.5})
            ))
            .rank
            .as_deref(),
            Some("bronze")
        );
    }
}
