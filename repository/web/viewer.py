"""stub"""
def routes(d): return []
