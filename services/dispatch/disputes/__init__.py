"""Dispute assignments (篇4: 统一指派化解): mediation under 三三制, supervision (督办) whose form
grows stronger as the steps are exhausted, stability-control persons (稳控责任人) and joint
meetings (联席会议). The assignments and meetings are kept by dispatch's repository."""
