//! `data_analysis`: summary statistics of a list of numbers, or of the ages
//! of a user cohort, stored as the job's result.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tasuki_worker::{Done, Handler, JobContext, JobError};

use crate::{AgeFilter, AppStore};

pub struct DataAnalysis {
    app: Arc<dyn AppStore>,
}

impl DataAnalysis {
    pub fn new(app: Arc<dyn AppStore>) -> Self {
        Self { app }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Payload {
    Values { values: Vec<f64> },
    Cohort { cohort: Cohort },
}

#[derive(Deserialize)]
pub struct Cohort {
    min_age: Option<i64>,
    max_age: Option<i64>,
}

/// Count, extremes, mean, median, 95th percentile (linear interpolation
/// between closest ranks) and population standard deviation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub p95: Option<f64>,
    pub std_dev: Option<f64>,
}

impl Summary {
    pub fn of(mut values: Vec<f64>) -> Self {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        let count = values.len();
        if count == 0 {
            return Self {
                count,
                min: None,
                max: None,
                mean: None,
                median: None,
                p95: None,
                std_dev: None,
            };
        }
        let mean = values.iter().sum::<f64>() / count as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count as f64;
        Self {
            count,
            min: values.first().copied(),
            max: values.last().copied(),
            mean: Some(mean),
            median: Some(quantile(&values, 0.5)),
            p95: Some(quantile(&values, 0.95)),
            std_dev: Some(variance.sqrt()),
        }
    }
}

/// The q-quantile of sorted, non-empty values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

#[async_trait]
impl Handler for DataAnalysis {
    const JOB_TYPE: &'static str = "data_analysis";
    type Payload = Payload;

    fn schema() -> Value {
        json!({
            "oneOf": [
                {
                    "type": "object",
                    "required": ["values"],
                    "additionalProperties": false,
                    "properties": {"values": {"type": "array", "maxItems": 1_000_000, "items": {"type": "number"}}}
                },
                {
                    "type": "object",
                    "required": ["cohort"],
                    "additionalProperties": false,
                    "properties": {"cohort": {
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "min_age": {"type": "integer", "minimum": 0, "maximum": 200},
                            "max_age": {"type": "integer", "minimum": 0, "maximum": 200}
                        }
                    }}
                }
            ]
        })
    }

    async fn handle(&self, _: &JobContext, payload: Payload) -> Result<Done, JobError> {
        let (source, values) = match payload {
            Payload::Values { values } => ("values", values),
            Payload::Cohort { cohort } => {
                let filter = AgeFilter {
                    min_age: cohort.min_age,
                    max_age: cohort.max_age,
                };
                let ages = self.app.user_ages(filter).await?;
                ("cohort_ages", ages.into_iter().map(|a| a as f64).collect())
            }
        };
        let summary = serde_json::to_value(Summary::of(values)).map_err(JobError::permanent)?;
        Ok(Done::result(json!({"source": source, "summary": summary})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_numbers() {
        let s = Summary::of(vec![4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!((s.count, s.min, s.max), (5, Some(1.0), Some(5.0)));
        assert_eq!((s.mean, s.median), (Some(3.0), Some(3.0)));
        assert!((s.p95.unwrap() - 4.8).abs() < 1e-9);
        assert!((s.std_dev.unwrap() - 2f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn even_counts_and_empty_input() {
        let s = Summary::of(vec![10.0, 20.0]);
        assert_eq!(s.median, Some(15.0));
        assert_eq!(s.std_dev, Some(5.0));
        let empty = Summary::of(Vec::new());
        assert_eq!((empty.count, empty.mean, empty.p95), (0, None, None));
    }
}
