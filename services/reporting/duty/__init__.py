"""The duty office (值班室, 篇9) inside reporting: roster, handover, spot checks, upward reports."""
