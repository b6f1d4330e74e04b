"""Information work of departments and townships (信息报送, 篇6): items and research items
against weekly and monthly quotas, the county office's feedback (采用, 批示, 通报), and the
monthly scores and rankings."""
