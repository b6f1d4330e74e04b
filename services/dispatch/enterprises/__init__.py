"""The enterprise risk register (企业风险台账, 篇3): enterprises with their risk level, hazards,
responsible people and the four response groups, and their safety inspections (检查) with
rectification deadlines (整改期限) flagged when overdue."""
