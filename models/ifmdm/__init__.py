"""IF-MDM (placeholder)"""
