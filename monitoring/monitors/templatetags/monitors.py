from django import template

from monitoring.monitors import delivery, wording

register = template.Library()


@register.simple_tag
def metric_value(metric: str, number):
    """A metric's value with its unit ("$1.2300", "850 ms", "12.50%")."""
    return wording.value(metric, number)


@register.simple_tag
def group_label(monitor, group: str):
    return wording.group_label(monitor, group)


@register.filter
def rule(monitor) -> str:
    """The monitor as one sentence in the active language (`{{ monitor|rule }}`)."""
    return wording.rule(monitor)


@register.filter
def delivery_error(error: str, user) -> str:
    """A delivery's stored error as `user` may read it: the detail for staff, else a neutral text
    (`{{ channel.last_error|delivery_error:user }}`; monitors.delivery.shown_error)."""
    return delivery.shown_error(error, getattr(user, "is_staff", False))
