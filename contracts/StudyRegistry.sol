// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {IStudyRegistry} from "../interfaces/IStudyRegistry.sol";

/// @title StudyRegistry
/// @notice Imaging sites register the studies they hold under opaque keys, each in its own
/// namespace, with a Merkle root over each study's content, so anyone holding a released instance
/// can verify it against the chain.
/// @dev Sites hold `SITE_ROLE`, granted and revoked by the admin. The admin role follows
/// OpenZeppelin AccessControlDefaultAdminRules: one admin, handed over or renounced in two steps
/// with a delay. The trust model is documented in IStudyRegistry.
contract StudyRegistry is IStudyRegistry, AccessControlDefaultAdminRules {
    /// @dev Two slots:
    /// slot 0, 20 + 4 + 4 + 4 = 32 bytes: `patient`, `registeredAt`, `version`, `instanceCount`.
    ///   `patientOf` (every AccessLog record) reads this slot alone.
    /// slot 1, 32 bytes: `contentRoot`.
    /// `registeredAt` is stored as uint32 seconds (enough until 2106) and returned as uint48: a
    /// uint48 would not fit beside the rest, and a third slot costs every registration 22,100 gas.
    struct Study {
        address patient;
        uint32 registeredAt;
        uint32 version;
        uint32 instanceCount;
        bytes32 contentRoot;
    }

    /// @notice Role of imaging sites, which register studies.
    bytes32 public constant SITE_ROLE = keccak256("SITE_ROLE");

    mapping(bytes32 entryKey => Study) private _studies;

    /// @notice Deploys the registry with `admin` as its only administrator.
    /// @param initialDelay Seconds between starting and accepting a handover of the admin role.
    /// @param admin Receives `DEFAULT_ADMIN_ROLE`, and so may grant and revoke `SITE_ROLE`.
    constructor(uint48 initialDelay, address admin)
        AccessControlDefaultAdminRules(initialDelay, _nonZeroAdmin(admin))
    {}

    /// @inheritdoc IStudyRegistry
    function registerStudy(bytes32 studyKey, address patient, bytes32 contentRoot, uint32 instanceCount)
        external
        onlyRole(SITE_ROLE)
    {
        if (studyKey == bytes32(0)) revert StudyRegistryZeroStudyKey();
        if (patient == address(0)) revert StudyRegistryZeroPatient();
        _checkContent(contentRoot, instanceCount);
        Study storage s = _studies[_entryKey(msg.sender, studyKey)];
        if (s.patient != address(0)) revert StudyRegistryStudyExists(msg.sender, studyKey);
        s.patient = patient;
        s.registeredAt = uint32(block.timestamp);
        s.version = 1;
        s.instanceCount = instanceCount;
        s.contentRoot = contentRoot;
        emit StudyRegistered(msg.sender, studyKey, patient, contentRoot, instanceCount);
    }

    /// @inheritdoc IStudyRegistry
    function updateContent(bytes32 studyKey, bytes32 contentRoot, uint32 instanceCount)
        external
        onlyRole(SITE_ROLE)
    {
        _checkContent(contentRoot, instanceCount);
        Study storage s = _knownStudy(msg.sender, studyKey);
        uint32 version = s.version + 1;
        s.version = version;
        s.instanceCount = instanceCount;
        s.contentRoot = contentRoot;
        emit ContentUpdated(msg.sender, studyKey, version, contentRoot, instanceCount);
    }

    /// @inheritdoc IStudyRegistry
    function correctPatient(address site, bytes32 studyKey, address patient)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (patient == address(0)) revert StudyRegistryZeroPatient();
        Study storage s = _knownStudy(site, studyKey);
        address oldPatient = s.patient;
        s.patient = patient;
        emit StudyCorrected(studyKey, oldPatient, patient, site);
    }

    /// @inheritdoc IStudyRegistry
    function retireStudy(address site, bytes32 studyKey) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Study storage s = _knownStudy(site, studyKey);
        address patient = s.patient;
        delete _studies[_entryKey(site, studyKey)];
        emit StudyRetired(studyKey, patient, site);
    }

    /// @inheritdoc IStudyRegistry
    function studyOf(address site, bytes32 studyKey)
        external
        view
        returns (address patient, bytes32 contentRoot, uint32 instanceCount, uint48 registeredAt)
    {
        Study storage s = _knownStudy(site, studyKey);
        return (s.patient, s.contentRoot, s.instanceCount, s.registeredAt);
    }

    /// @inheritdoc IStudyRegistry
    function patientOf(address site, bytes32 studyKey) external view returns (address) {
        return _studies[_entryKey(site, studyKey)].patient;
    }

    /// @inheritdoc IStudyRegistry
    function contentVersionOf(address site, bytes32 studyKey) external view returns (uint32) {
        return _knownStudy(site, studyKey).version;
    }

    /// @inheritdoc IStudyRegistry
    function verifyInstance(address site, bytes32 studyKey, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        return MerkleProof.verifyCalldata(proof, _knownStudy(site, studyKey).contentRoot, leaf);
    }

    function _knownStudy(address site, bytes32 studyKey) internal view returns (Study storage s) {
        s = _studies[_entryKey(site, studyKey)];
        if (s.patient == address(0)) revert StudyRegistryUnknownStudy(site, studyKey);
    }

    function _checkContent(bytes32 contentRoot, uint32 instanceCount) internal pure {
        if (contentRoot == bytes32(0) || instanceCount == 0) {
            revert StudyRegistryInvalidContent(contentRoot, instanceCount);
        }
    }

    /// @dev Runs before the base constructor, so a zero admin gets this contract's own error.
    function _nonZeroAdmin(address admin) private pure returns (address) {
        if (admin == address(0)) revert StudyRegistryZeroAdmin();
        return admin;
    }

    function _entryKey(address site, bytes32 studyKey) private pure returns (bytes32) {
        return keccak256(abi.encode(site, studyKey));
    }
}
