"""Special campaigns (专项行动, 篇1): started and ended by the county, with their own reporting
rhythm as deadlines beside the incidents' (a report every few days, and one after each stage)."""
