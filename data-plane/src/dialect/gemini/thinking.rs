//! `reasoning_effort` → Gemini's `thinkingConfig` (`notes/translation.md` §8.2): a token budget for Gemini 2.5
//! and earlier, a thinking level for Gemini 3 and later. Thought summaries are asked for (`includeThoughts`)
//! whenever the client gave an effort other than `none`, so its reasoning text comes back.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<&'static str>,
    pub include_thoughts: bool,
}

/// The family traits that change the mapping, read from the model id (`gemini-2.5-flash-lite`,
/// `gemini-3-pro-preview`…).
#[derive(Debug, Clone, Copy)]
struct Family {
    /// Gemini 3 and later take `thinkingLevel` instead of a budget.
    levels: bool,
    pro: bool,
    flash_lite: bool,
}

impl Family {
    fn of(model: &str) -> Family {
        let major = model
            .strip_prefix("gemini-")
            .map(|rest| {
                rest.bytes()
                    .take_while(u8::is_ascii_digit)
                    .fold(0u32, |n, d| {
                        n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
                    })
            })
            .unwrap_or(0);
        Family {
            levels: major >= 3,
            pro: model.contains("-pro"),
            flash_lite: model.contains("flash-lite"),
        }
    }

    /// The most a 2.5 model may think (Google's documented maxima).
    fn max_budget(self) -> u32 {
        if self.pro { 32_768 } else { 24_576 }
    }
}

/// Whether the model requires thought signatures on replayed function calls (Gemini 3 and later).
pub(super) fn requires_thought_signatures(model: &str) -> bool {
    Family::of(model).levels
}

/// The thinking settings for `effort` on `model`; `None` when the client gave no effort (the model's default).
/// Unknown effort names map like `medium`.
pub(super) fn config(effort: Option<&str>, model: &str) -> Option<ThinkingConfig> {
    let effort = effort?;
    let family = Family::of(model);
    let include_thoughts = effort != "none";
    if family.levels {
        // Only Flash knows `minimal` and `medium`; Pro has `low` and `high`.
        let flash = !family.pro;
        let level = match effort {
            "none" | "minimal" => {
                if flash {
                    "minimal"
                } else {
                    "low"
                }
            }
            "low" => "low",
            "high" | "xhigh" => "high",
            _ => {
                if flash {
                    "medium"
                } else {
                    "high"
                }
            }
        };
        return Some(ThinkingConfig {
            thinking_budget: None,
            thinking_level: Some(level),
            include_thoughts,
        });
    }
    let budget = match effort {
        // Pro cannot turn thinking off; 128 is its least.
        "none" => {
            if family.pro {
                128
            } else {
                0
            }
        }
        "minimal" => {
            if family.flash_lite {
                512
            } else {
                128
            }
        }
        "low" => 1024,
        "high" => 4096,
        "xhigh" => family.max_budget(),
        _ => 2048,
    };
    Some(ThinkingConfig {
        thinking_budget: Some(budget),
        thinking_level: None,
        include_thoughts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(effort: &str, model: &str) -> (Option<u32>, bool) {
        let c = config(Some(effort), model).unwrap();
        (c.thinking_budget, c.include_thoughts)
    }

    fn level(effort: &str, model: &str) -> Option<&'static str> {
        config(Some(effort), model).unwrap().thinking_level
    }

    #[test]
    fn no_effort_leaves_the_model_default() {
        assert_eq!(config(None, "gemini-2.5-flash"), None);
    }

    #[test]
    fn gemini_2_5_budgets_follow_the_table() {
        assert_eq!(budget("none", "gemini-2.5-flash"), (Some(0), false));
        assert_eq!(budget("none", "gemini-2.5-pro"), (Some(128), false));
        assert_eq!(budget("minimal", "gemini-2.5-flash"), (Some(128), true));
        assert_eq!(
            budget("minimal", "gemini-2.5-flash-lite"),
            (Some(512), true)
        );
        assert_eq!(budget("low", "gemini-2.5-flash"), (Some(1024), true));
        assert_eq!(budget("medium", "gemini-2.5-flash"), (Some(2048), true));
        assert_eq!(budget("high", "gemini-2.5-flash"), (Some(4096), true));
        assert_eq!(budget("xhigh", "gemini-2.5-pro"), (Some(32_768), true));
        assert_eq!(budget("xhigh", "gemini-2.5-flash"), (Some(24_576), true));
        assert_eq!(budget("whatever", "gemini-2.5-flash"), (Some(2048), true));
    }

    #[test]
    fn gemini_3_levels_follow_the_table() {
        assert_eq!(level("none", "gemini-3-flash-preview"), Some("minimal"));
        assert_eq!(level("none", "gemini-3-pro-preview"), Some("low"));
        assert_eq!(level("minimal", "gemini-3-pro-preview"), Some("low"));
        assert_eq!(level("low", "gemini-3-flash-preview"), Some("low"));
        assert_eq!(level("medium", "gemini-3-flash-preview"), Some("medium"));
        assert_eq!(level("medium", "gemini-3-pro-preview"), Some("high"));
        assert_eq!(level("xhigh", "gemini-3-pro-preview"), Some("high"));
        let c = config(Some("high"), "gemini-3-pro-preview").unwrap();
        assert_eq!((c.thinking_budget, c.include_thoughts), (None, true));
        assert!(requires_thought_signatures("gemini-3-pro-preview"));
        assert!(!requires_thought_signatures("gemini-2.5-pro"));
    }
}
