import numpy as np
import pytest

from comfort_assets.domain.comfort import (
    DiscomfortBand,
    apparent_temperature,
    discomfort_band,
    discomfort_bands,
    discomfort_index,
    feels_like,
    wind_chill,
)
from comfort_assets.domain.units import (
    decametres_to_km,
    fahrenheit_to_celsius,
    inches_to_mm,
    kmh_to_ms,
    miles_to_km,
    mph_to_ms,
)


@pytest.mark.parametrize(
    ("temp_c", "humidity", "expected"),
    [
        # 1.8·30 − 0.55·0.3·28 + 32
        (30.0, 70.0, 81.38),
        # 1.8·20 − 0.55·0.5·10 + 32
        (20.0, 50.0, 65.25),
        # 1.8·25 − 0.55·0.4·19 + 32
        (25.0, 60.0, 72.82),
        # saturated air: DI = 1.8·Ta + 32
        (10.0, 100.0, 50.0),
    ],
)
def test_discomfort_index_matches_hand_computation(temp_c, humidity, expected):
    assert discomfort_index(temp_c, humidity) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("di", "band"),
    [
        (67.999, DiscomfortBand.LOW),
        (68.0, DiscomfortBand.NORMAL),
        (74.999, DiscomfortBand.NORMAL),
        (75.0, DiscomfortBand.HIGH),
        (79.999, DiscomfortBand.HIGH),
        (80.0, DiscomfortBand.VERY_HIGH),
        (-5.0, DiscomfortBand.LOW),
        (120.0, DiscomfortBand.VERY_HIGH),
    ],
)
def test_every_band_edge(di, band):
    assert discomfort_band(di) is band
    assert discomfort_bands(np.array([di]))[0] == band.value


def test_band_of_nan_is_an_error_and_vectorised_gives_none():
    with pytest.raises(ValueError, match="finite"):
        discomfort_band(float("nan"))
    assert discomfort_bands(np.array([np.nan, 70.0])).tolist() == [None, "normal"]


def test_wind_chill_matches_environment_canada_table():
    # −10 °C at 20 km/h is −17.9 °C in the published table
    assert wind_chill(-10.0, 20 / 3.6) == pytest.approx(-17.86, abs=0.01)


def test_apparent_temperature_hand_computed():
    # e = 0.5·6.105·exp(17.27·30/267.7) = 21.142 hPa; AT = 30 + 0.33e − 0.7·2 − 4
    assert apparent_temperature(30.0, 50.0, 2.0) == pytest.approx(31.577, abs=0.002)


def test_feels_like_switches_formula_at_ten_degrees():
    cold = feels_like(np.array([10.0]), np.array([80.0]), np.array([5.0]))
    warm = feels_like(np.array([10.01]), np.array([80.0]), np.array([5.0]))
    assert cold[0] == pytest.approx(wind_chill(10.0, 5.0))
    assert warm[0] == pytest.approx(apparent_temperature(10.01, 80.0, 5.0))
    # calm cold air: wind chill is undefined below 4.8 km/h, the air temperature is used
    assert feels_like(np.array([0.0]), np.array([50.0]), np.array([1.0]))[0] == 0.0


def test_unit_conversions():
    assert fahrenheit_to_celsius(212.0) == pytest.approx(100.0)
    assert fahrenheit_to_celsius(-40.0) == pytest.approx(-40.0)
    assert mph_to_ms(1048.36058) == pytest.approx(468.659, abs=1e-3)
    assert kmh_to_ms(36.0) == pytest.approx(10.0)
    assert inches_to_mm(1.21) == pytest.approx(30.734)
    assert miles_to_km(10.0) == pytest.approx(16.09344)
    assert decametres_to_km(2000.0) == pytest.approx(20.0)
