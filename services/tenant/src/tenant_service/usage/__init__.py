"""Plans and usage: messages counted per tenant, day (in the tenant's timezone), category and direction."""
